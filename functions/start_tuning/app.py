"""Start hyperparameter tuning: create the K-Means tuning job for this run (or find it on a retry)."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.models import StartTuningInput
from kmeans_pipeline.settings import StackSettings
from kmeans_pipeline.tuning import start_tuning

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = StartTuningInput.from_event(event)
    started = start_tuning(step.config, step.dataset, StackSettings.from_env(), aws.client("sagemaker"))
    logger.info("Tuning job started", extra={"tuning_job": started.tuning_job_name, "reused": started.reused})
    return started.to_json()
