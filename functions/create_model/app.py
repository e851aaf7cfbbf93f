"""Create model and endpoint config from the best training job's artifact."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import CreateModelInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.create_model import create_model

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = CreateModelInput.from_event(event)
    follow_run(logger, step.config)
    created = create_model(step.config, step.best, step.version, StackSettings.from_env(), client("sagemaker"))
    logger.info("Model created", extra={"model": created.model_name, "endpoint_config": created.endpoint_config_name})
    return created.to_json()
