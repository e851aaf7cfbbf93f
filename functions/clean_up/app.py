"""Clean up superseded models: keep the newest N of this stack's models and endpoint configs, never one in use."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import CleanUpInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.clean_up import clean_up

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = CleanUpInput.from_event(event)
    follow_run(logger, step.config)
    settings = StackSettings.from_env()
    result = clean_up(step.config, settings.name_prefix, settings.keep_models, client("sagemaker"))
    logger.info("Cleaned up", extra={"kept": result.kept, "deleted": result.deleted})
    return result.to_json()
