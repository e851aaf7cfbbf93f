"""Check drift: what the serving model scored in a recent window against its evaluation report; CloudWatch metrics
that the stack's drift alarm watches."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.settings import DriftSettings, StackSettings
from kmeans_pipeline.steps.check_drift import check_drift

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    settings = StackSettings.from_env()
    check = check_drift(
        event,
        settings.endpoint_name,
        settings.data_bucket,
        DriftSettings.from_env(),
        client("sagemaker"),
        client("s3"),
        client("cloudwatch"),
    )
    logger.info("Drift checked", extra=check.to_json())
    return check.to_json()
