"""Evaluate model: score the test set with the best model, write the report, decide whether to promote it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.inputs import EvaluateModelInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.evaluate_model import evaluate_model

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = EvaluateModelInput.from_event(event)
    result = evaluate_model(
        step.config, step.dataset, step.best, StackSettings.from_env(), client("s3"), client("sagemaker")
    )
    logger.info(
        "Model evaluated",
        extra={"report": result.report_uri, "decision": result.gate.decision, "headline": result.headline},
    )
    return result.to_json()
