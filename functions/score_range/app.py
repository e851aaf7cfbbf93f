"""Score a range: score one byte range of a batch file with the serving model, write its part file."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.inputs import ScoreRangeInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.score_range import score_range

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = ScoreRangeInput.from_event(event)
    summary = score_range(
        StackSettings.from_env(), client("s3"), client("sagemaker"), client("sagemaker-runtime"), step.item
    )
    logger.info("Range scored", extra={"batch": step.item.name, **summary})
    return summary
