"""Record the model version: register the evaluated model in the stack's model registry group, then keep its
approval status in step with what happened to it."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import follow_run
from kmeans_pipeline.schemas.inputs import RecordVersionInput
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.record_version import record_version

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    step = RecordVersionInput.from_event(event)
    follow_run(logger, step.config)
    result = record_version(step, StackSettings.from_env(), client("s3"), client("sagemaker"))
    logger.info(
        "Model version recorded",
        extra={"event": step.event, "modelPackageArn": result.model_package_arn, "status": result.status},
    )
    return result.to_json()
