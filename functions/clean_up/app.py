"""Clean up superseded models: keep the newest N of this stack's models and endpoint configs, never one in use."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.cleanup import clean_up
from kmeans_pipeline.models import CleanUpInput
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = CleanUpInput.from_event(event)
    settings = StackSettings.from_env()
    result = clean_up(step.config, settings.name_prefix, settings.keep_models, aws.client("sagemaker"))
    logger.info("Cleaned up", extra={"kept": result.kept, "deleted": result.deleted})
    return result.to_json()
