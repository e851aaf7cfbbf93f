"""Check endpoint: one look at the endpoint; success means InService on this run's endpoint config."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.lease import run_lease
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import CheckEndpointInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.check_endpoint import check_endpoint

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = CheckEndpointInput.from_event(event)
    follow_run(logger, step.config)
    lease = run_lease(step.config, step.lease_owner, StackSettings.from_env().deploy_lease_table)
    status = check_endpoint(
        step.config, step.endpoint_config_name, client("sagemaker"), step.previous_endpoint_config_name, lease
    )
    logger.info("Endpoint status", extra={"status": status.status, "endpoint_config": status.endpoint_config_name})
    return status.to_json()
