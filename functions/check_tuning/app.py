"""Check tuning job: one look at the tuning job; the state machine decides whether to wait again."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import count, follow_run, step_metrics
from kmeans_pipeline.schemas.inputs import CheckTuningInput
from kmeans_pipeline.steps.check_tuning import check_tuning

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = CheckTuningInput.from_event(event)
    follow_run(logger, step.config)
    status = check_tuning(step.config, step.tuning_job_name, client("sagemaker"))
    logger.info("Tuning job status", extra={"status": status.status, "training_jobs": status.training_jobs})
    if status.outcome != "running":  # the tuning job has ended: its training jobs, once
        jobs = status.training_jobs
        count(metrics, TrainingJobsCompleted=jobs["completed"], TrainingJobsFailed=jobs["failed"])
    return status.to_json()
