"""Deploy to endpoint: create it, or update it in place; report "busy" while another deployment runs."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.lease import run_lease
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import DeployEndpointInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.deploy_endpoint import deploy_endpoint

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = DeployEndpointInput.from_event(event)
    follow_run(logger, step.config)
    settings = StackSettings.from_env()
    lease = run_lease(step.config, step.lease_owner, settings.deploy_lease_table)
    result = deploy_endpoint(step.config, step.endpoint_config_name, settings, client("sagemaker"), lease)
    logger.info("Deployment", extra={"action": result.action, "endpoint_status": result.endpoint_status})
    return result.to_json()
