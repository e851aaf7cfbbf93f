"""Evaluate model: score the test set with the best model, write the report, decide whether to promote it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.evaluate import evaluate
from kmeans_pipeline.models import EvaluateModelInput
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = EvaluateModelInput.from_event(event)
    result = evaluate(
        step.config, step.dataset, step.best, StackSettings.from_env(), aws.client("s3"), aws.client("sagemaker")
    )
    logger.info(
        "Model evaluated",
        extra={"report": result.report_uri, "decision": result.gate.decision, "headline": result.headline},
    )
    return result.to_json()
