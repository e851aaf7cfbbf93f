"""Create model and endpoint config from the best training job's artifact."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.deploy import create_model
from kmeans_pipeline.models import CreateModelInput
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = CreateModelInput.from_event(event)
    created = create_model(step.config, step.best, StackSettings.from_env(), aws.client("sagemaker"))
    logger.info("Model created", extra={"model": created.model_name, "endpoint_config": created.endpoint_config_name})
    return created.to_json()
