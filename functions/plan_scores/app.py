"""Plan the scoring ranges: check the file to score, pin the serving model, cut the file into ranges."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.inputs import PlanScoresInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.plan_scores import plan_scores

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = PlanScoresInput.from_event(event)
    plan = plan_scores(step.input, step.execution, StackSettings.from_env(), client("s3"), client("sagemaker"))
    logger.info("Batch planned", extra={"batch": plan.name, "ranges": plan.ranges, "model": plan.model})
    return plan.to_json()
