"""Merge the ranges: compose the workers' readings, report the first problem in file order, merge the statistics
and decide the treatments (or send ranges read under a wrong assumption to be read again)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import count, follow_run, step_metrics
from kmeans_pipeline.schemas.inputs import MergeRangesInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.merge_ranges import merge_ranges

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = MergeRangesInput.from_event(event)
    follow_run(logger, step.config)
    merged = merge_ranges(step.config, StackSettings.from_env(), client("s3"))
    logger.info("Ranges merged", extra={"next": merged.next, "items": merged.items})
    if merged.next != "again":
        count(metrics, TrainRows=merged.train_rows, TestRows=merged.test_rows)
    return merged.to_json()
