"""Evaluate model: score the test set with the best model, write the report, decide whether to promote it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import COMPARISON, ENDPOINT, count, follow_run, step_metrics
from kmeans_pipeline.schemas.inputs import EvaluateModelInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.evaluate_model import evaluate_model

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = EvaluateModelInput.from_event(event)
    follow_run(logger, step.config)
    result = evaluate_model(
        step.config,
        step.dataset,
        step.best,
        StackSettings.from_env(),
        client("s3"),
        client("sagemaker"),
        strictly_better=bool(step.strictly_better),
        under_lease=bool(step.under_lease),
    )
    logger.info(
        "Model evaluated",
        extra={
            "report": result.report_uri,
            "comparison": result.comparison_uri,
            "decision": result.gate.decision,
            "headline": result.headline,
        },
    )
    promoted = result.gate.decision == "promote"
    # A run that compares again under the deploy lease decides twice: the comparison says which decision it was.
    dimensions = {ENDPOINT: step.config.names.endpoint, COMPARISON: "underLease" if step.under_lease else "first"}
    count(metrics, dimensions, ModelsPromoted=int(promoted), ModelsKept=int(not promoted))
    return result.to_json()
