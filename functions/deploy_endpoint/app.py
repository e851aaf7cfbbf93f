"""Deploy to endpoint: create it, or update it in place; report "busy" while another deployment runs."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.deploy import deploy
from kmeans_pipeline.models import DeployEndpointInput
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = DeployEndpointInput.from_event(event)
    result = deploy(step.config, step.endpoint_config_name, StackSettings.from_env(), aws.client("sagemaker"))
    logger.info("Deployment", extra={"action": result.action, "endpoint_status": result.endpoint_status})
    return result.to_json()
