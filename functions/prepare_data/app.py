"""Prepare training data: validate the raw CSV, split it train/test and write the channels (SSE-KMS)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import count, follow_run, step_metrics
from kmeans_pipeline.schemas.inputs import PrepareDataInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.prepare_data import prepare_data

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = PrepareDataInput.from_event(event)
    follow_run(logger, step.config)
    dataset = prepare_data(step.config, StackSettings.from_env(), client("s3"))
    logger.info("Dataset written", extra={"train_rows": dataset.train_rows, "test_rows": dataset.test_rows})
    count(metrics, TrainRows=dataset.train_rows, TestRows=dataset.test_rows)
    return dataset.to_json()
