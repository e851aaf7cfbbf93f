"""Resolve run configuration: console, schedule and S3-upload inputs become one validated RunConfig."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import ResolveRunInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.resolve_run import resolve_run

logger = Logger()


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = ResolveRunInput.from_event(event)
    follow_run(logger, execution_name=step.execution.name)  # the run id is made from it, next
    config = resolve_run(
        step.input,
        execution_name=step.execution.name,
        execution_start_time=step.execution.start_time,
        settings=StackSettings.from_env(),
        s3=client("s3"),
    )
    follow_run(logger, config)
    logger.info("Run configured", extra={"trigger": config.trigger})
    return config.to_json()
