"""Summarize the scores: compose the workers' readings (or send ranges to be scored again), write the summary."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import count, step_metrics
from kmeans_pipeline.schemas.inputs import FinishScoresInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.finish_scores import announcement, finish_scores

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = FinishScoresInput.from_event(event)
    merged = finish_scores(StackSettings.from_env(), client("s3"), step.plan)
    logger.info("Scores summarized", extra={"batch": step.plan.name, "next": merged.next})
    out = merged.to_json()
    if merged.summary is not None:
        summary = merged.summary
        count(metrics, RecordsScored=summary.scored, RecordsFlagged=summary.flagged, RecordsRefused=summary.errors)
        out["message"] = announcement(summary)
    return out
