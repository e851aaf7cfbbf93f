"""Verify endpoint: score test rows through the endpoint and compare with offline scoring; restore on a mismatch."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.inputs import VerifyEndpointInput
from kmeans_pipeline.steps.verify_endpoint import verify_endpoint

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = VerifyEndpointInput.from_event(event)
    check = verify_endpoint(
        step.config,
        step.dataset,
        step.model,
        step.previous_endpoint_config_name,
        step.deployment_action == "created",
        client("s3"),
        client("sagemaker"),
        client("sagemaker-runtime"),
    )
    logger.info("Endpoint checked", extra={"passed": check.passed, "rows": check.checked_rows, "cause": check.cause})
    return check.to_json()
