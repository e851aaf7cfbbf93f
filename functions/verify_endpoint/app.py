"""Verify endpoint: score test rows through the endpoint and compare with offline scoring; restore on a mismatch."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import ENDPOINT, count, follow_run, step_metrics
from kmeans_pipeline.schemas.inputs import VerifyEndpointInput
from kmeans_pipeline.steps.verify_endpoint import verify_endpoint

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = VerifyEndpointInput.from_event(event)
    follow_run(logger, step.config)
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
    count(
        metrics,
        {ENDPOINT: step.config.names.endpoint},
        VerificationRowsChecked=check.checked_rows,
        VerificationRowsDiffering=check.differing_rows,
    )
    return check.to_json()
