"""Start hyperparameter tuning: create the K-Means tuning job for this run (or find it on a retry)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import StartTuningInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.start_tuning import start_tuning

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = StartTuningInput.from_event(event)
    follow_run(logger, step.config)
    started = start_tuning(step.config, step.dataset, StackSettings.from_env(), client("sagemaker"))
    logger.info("Tuning job started", extra={"tuning_job": started.tuning_job_name, "reused": started.reused})
    return started.to_json()
