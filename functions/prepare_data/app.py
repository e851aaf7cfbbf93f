"""Prepare training data: validate the raw CSV, split it train/test and write the channels (SSE-KMS)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.models import PrepareDataInput
from kmeans_pipeline.prepare import prepare
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = PrepareDataInput.from_event(event)
    dataset = prepare(step.config, StackSettings.from_env(), aws.client("s3"))
    logger.info("Dataset written", extra={"train_rows": dataset.train_rows, "test_rows": dataset.test_rows})
    return dataset.to_json()
