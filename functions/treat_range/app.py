"""Treat a range: write one range's channel rows again with the treatments the reduce decided."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import TreatRangeInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.treat_range import treat_range

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = TreatRangeInput.from_event(event)
    follow_run(logger, step.config)
    summary = treat_range(step.config, StackSettings.from_env(), client("s3"), step.item)
    logger.info("Range treated", extra=summary)
    return summary
