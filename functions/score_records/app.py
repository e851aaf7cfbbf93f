"""Score records: the function URL that answers, per raw record, its cluster, distance, score and anomaly flag."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.score_records import score_records

logger = Logger()


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    settings = StackSettings.from_env()
    response = score_records(
        event,
        settings.endpoint_name,
        settings.data_bucket,
        client("sagemaker"),
        client("s3"),
        client("sagemaker-runtime"),
    )
    logger.info("Records scored", extra={"status": response["statusCode"]})
    return response
