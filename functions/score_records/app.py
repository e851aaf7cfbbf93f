"""Score records: the function URL that answers, per raw record, its cluster, distance, score and anomaly flag."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline import aws
from kmeans_pipeline.score_api import handle
from kmeans_pipeline.settings import StackSettings

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    settings = StackSettings.from_env()
    response = handle(
        event,
        settings.endpoint_name,
        settings.data_bucket,
        aws.client("sagemaker"),
        aws.client("s3"),
        aws.client("sagemaker-runtime"),
    )
    logger.info("Records scored", extra={"status": response["statusCode"]})
    return response
