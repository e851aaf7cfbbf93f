"""Check tuning job: one look at the tuning job; the state machine decides whether to wait again."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.inputs import CheckTuningInput
from kmeans_pipeline.steps.check_tuning import check_tuning

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    step = CheckTuningInput.from_event(event)
    status = check_tuning(step.config, step.tuning_job_name, client("sagemaker"))
    logger.info("Tuning job status", extra={"status": status.status, "training_jobs": status.training_jobs})
    return status.to_json()
