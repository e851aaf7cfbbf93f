"""Resolve run configuration: console, schedule and S3-upload inputs become one validated RunConfig."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.models import ResolveRunInput
from kmeans_pipeline.resolve import resolve
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context(log_event=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = ResolveRunInput.from_event(event)
    config = resolve(
        step.input,
        execution_name=step.execution.name,
        execution_start_time=step.execution.start_time,
        settings=StackSettings.from_env(),
        s3=aws.client("s3"),
    )
    logger.info("Run configured", extra={"run_id": config.run_id, "trigger": config.trigger})
    return config.to_json()
