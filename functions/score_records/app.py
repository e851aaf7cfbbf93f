"""Score records: the function URL that answers, per raw record, its cluster, distance, score and anomaly flag, and
why a flagged record is flagged; the scored records are kept for drift checks."""

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from kmeans_pipeline.aws.clients import client
from kmeans_pipeline.aws.telemetry import ENDPOINT, MODEL, count, step_metrics
from kmeans_pipeline.schemas.settings import StackSettings
from kmeans_pipeline.steps.score_records import score_records

logger = Logger()
metrics = step_metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    settings = StackSettings.from_env()
    response = score_records(
        event,
        settings.endpoint_name,
        settings.data_bucket,
        client("sagemaker"),
        client("s3"),
        client("sagemaker-runtime"),
        kms_key_arn=settings.kms_key_arn,
    )
    body, endpoint = response.body, {ENDPOINT: settings.endpoint_name}
    if response.status == 200:
        logger.info(
            "Records scored",
            extra={"status": 200, "model": body["model"], "records": body["records"], "recorded": response.recorded},
        )
        count(
            metrics,
            {**endpoint, MODEL: body["model"]},
            RecordsScored=body["scored"],
            RecordsFlagged=body["anomalies"],
            RecordsRefused=body["errors"],
            UnseenLevels=body["unseenLevels"],
        )
        if response.not_recorded:
            logger.warning("Scored records not kept for drift checks", extra={"error": response.not_recorded})
            count(metrics, {**endpoint, MODEL: body["model"]}, ScoredRecordsNotKept=body["scored"])
    else:
        logger.info("Request refused", extra={"status": response.status, "error": body["error"]})
        count(metrics, endpoint, RequestsRefused=1)
    return response.to_http()
