"""Split a range: validate one byte range of the raw CSV, split it train/test, write its shards and its result."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import SplitRangeInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.split_range import split_range

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = SplitRangeInput.from_event(event)
    follow_run(logger, step.config)
    summary = split_range(step.config, StackSettings.from_env(), client("s3"), step.range)
    logger.info("Range split", extra={"range": step.range.index, **summary})
    return summary
