"""Finish the dataset: the first treated value out of range in file order, or the dataset tuning trains on."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import FinishDatasetInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.finish_dataset import finish_dataset

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = FinishDatasetInput.from_event(event)
    follow_run(logger, step.config)
    dataset = finish_dataset(step.config, StackSettings.from_env(), client("s3"))
    logger.info("Dataset written", extra={"train_rows": dataset.train_rows, "test_rows": dataset.test_rows})
    return dataset.to_json()
