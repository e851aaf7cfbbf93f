"""Plan the data ranges: check the input's objects and headers, cut them into ranges, write the Map's items."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import PlanDataInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.plan_data import plan_data

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = PlanDataInput.from_event(event)
    follow_run(logger, step.config)
    plan = plan_data(step.config, StackSettings.from_env(), client("s3"))
    logger.info("Data planned", extra={"ranges": plan.ranges, "parts": plan.parts, "bytes": plan.bytes})
    return plan.to_json()
