"""Take the deploy lease / Release the deploy lease: one execution at a time deploys (a DynamoDB lease)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.lease import run_lease
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import DeployLeaseInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.deploy_lease import deploy_lease

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = DeployLeaseInput.from_event(event)
    follow_run(logger, step.config)
    lease = run_lease(step.config, step.lease_owner, StackSettings.from_env().deploy_lease_table)
    assert lease is not None  # the input requires an owner
    status = deploy_lease(
        step.config, step.action, lease, step.evaluated_against, step.execution_start, client("sagemaker")
    )
    logger.info(
        "Deploy lease",
        extra={"action": step.action, "held": status.held, "holder": status.holder, "reason": status.reason},
    )
    return status.to_json()
