"""Score records: the one scoring API for callers ("is this transaction anomalous?").

A caller sends raw records, as CSV with a header or as JSON, to the function URL (IAM-authorised). Each record's
feature columns are turned into the serving model's features with the treatment its run recorded, the endpoint
scores them, and each record gets ``closest_cluster``, ``distance_to_cluster``, ``score`` (distance over its
cluster's threshold) and ``anomaly`` (score above 1). A bad record gets an ``error`` naming the field; the others
are scored all the same. A category level the model never saw is scored with none of its levels set, and the
record carries a warning. When the model's run called some clusters small (``smallClusters: anomalous``), a
record closest to one of them is scored against the nearest other cluster, named in ``reference_cluster`` with
``distance_to_reference``. A flagged record also gets ``explanation`` and ``reasons``: the features or levels that
put it beyond its threshold, in the CSV's units against its cluster's normal range (``model.explain``).

Every scored record is kept for drift checks (``aws.scored``: its feature values, cluster, distance and score, one
SSE-KMS object per request). A failed write does not fail the answer: the response says so to the handler, which
logs it and counts it.

What the endpoint serves is read with DescribeEndpoint on every request; the model's report (treatment,
thresholds) is read once per endpoint config and cached, so a new deployment is used as soon as it serves.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from kmeans_pipeline.aws.clients import error_code
from kmeans_pipeline.aws.scored import put_scored, scored_key, scored_lines
from kmeans_pipeline.aws.scoring import (
    Ragged,
    ServingUnavailable,
    ServingView,
    encode_records,
    record_answers,
    score_features,
)
from kmeans_pipeline.aws.scoring import serving_view as _serving_view
from kmeans_pipeline.aws.serving import invoke_endpoint
from kmeans_pipeline.errors import (
    EndpointAnswerError,
    PipelineError,
    SageMakerRequestError,
    SageMakerThrottlingError,
    SageMakerUnavailableError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

MAX_RECORDS = 10_000
# A function URL takes requests of up to 6 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024


class RequestError(PipelineError):
    """The request as a whole cannot be scored (HTTP status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def serving_view(endpoint: str, bucket: str, sagemaker: SageMakerClient, s3: S3Client) -> ServingView:
    """The serving model's treatment, thresholds and explainer (:func:`kmeans_pipeline.aws.scoring.serving_view`);
    503 when the endpoint serves no model this pipeline can score with."""
    try:
        return _serving_view(endpoint, bucket, sagemaker, s3)
    except ServingUnavailable as exc:
        raise RequestError(503, str(exc)) from None


# ------------------------------------------------------------------------------------------------------------
# Records in
# ------------------------------------------------------------------------------------------------------------


def records_from_csv(text: str) -> list[Any]:
    """CSV with a header row (names as in the training CSV; other columns are ignored)."""
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(rows, None)
        if header is None:
            raise RequestError(400, "the CSV is empty: expected a header row naming the columns, then records")
        names = [name.strip() for name in header]
        records = []
        for row in rows:
            if not row or all(not cell.strip() for cell in row):
                continue
            records.append(dict(zip(names, row)) if len(row) == len(names) else Ragged(len(row), len(names)))
    except csv.Error as exc:
        raise RequestError(400, f"the CSV cannot be read: line {rows.line_num}: {exc}") from None
    return records


def records_from_json(text: str) -> list[Any]:
    """``{"records": [{column: value, ...}, ...]}`` or just the list."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RequestError(400, f"the body is not JSON: {exc}") from None
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise RequestError(400, 'expected {"records": [{"column": value, ...}, ...]} or a JSON list of records')
    return records


# ------------------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------------------


def invoke(runtime: SageMakerRuntimeClient, endpoint: str, body: bytes) -> bytes:
    try:
        return invoke_endpoint(runtime, endpoint, body)
    except SageMakerThrottlingError as exc:
        raise RequestError(429, f"the endpoint {endpoint} is throttling requests: {exc}") from exc
    except SageMakerUnavailableError as exc:
        raise RequestError(503, f"the endpoint {endpoint} cannot answer now: {exc}") from exc
    except SageMakerRequestError as exc:
        raise RequestError(502, f"the endpoint {endpoint} refused the request: {exc}") from exc


@dataclass(frozen=True)
class Answer:
    """A request's records scored: the answer's body, and what is kept for drift checks."""

    body: dict
    lines: bytes


def score_with_endpoint(records: list[Any], view: ServingView, endpoint: str, runtime: SageMakerRuntimeClient) -> dict:
    """The answer's body for these records."""
    return score_request(records, view, endpoint, runtime).body


def score_request(records: list[Any], view: ServingView, endpoint: str, runtime: SageMakerRuntimeClient) -> Answer:
    if len(records) > MAX_RECORDS:
        raise RequestError(413, f"{len(records):,} records in one request; send at most {MAX_RECORDS:,}")
    encoded = encode_records(records, view.treatment)
    good, errors, warnings = encoded.good, encoded.errors, encoded.warnings
    try:
        scored = score_features(encoded.Z, view, endpoint, runtime, invoke)
    except EndpointAnswerError as exc:
        raise RequestError(502, f"the endpoint's answer is not K-Means': {exc}") from None
    scores, reference, referred = scored.scores, scored.reference, scored.referred
    results: list[dict[str, Any]] = [{"record": i, "error": message} for i, message in errors.items()]
    results += [{"record": i, **answer} for i, answer in record_answers(view, encoded, scored).items()]
    results.sort(key=lambda result: result["record"])
    answer = {
        "endpoint": endpoint,
        "endpointConfig": view.endpoint_config,
        "model": view.model_name,
        "report": view.report_uri,
        "features": view.treatment.input_columns,
        "records": len(records),
        "scored": len(good),
        "anomalies": int((scores > 1).sum()),
        "unseenLevels": len(warnings),
        "errors": len(errors),
        "results": results,
    }
    lines = scored_lines(view.treatment.input_columns, encoded.raw, reference, np.asarray(referred), scores)
    return Answer(answer, lines)


# ------------------------------------------------------------------------------------------------------------
# The function URL's request and response
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResponse:
    """The answer to one request: its HTTP status and JSON body (``scored``, ``anomalies``, ``errors`` on a 200),
    and where its scored records were kept (or why they could not be)."""

    status: int
    body: dict
    recorded: str | None = None
    not_recorded: str | None = None

    def to_http(self) -> dict:
        """The function URL's response."""
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(self.body),
        }


def record(s3: S3Client, bucket: str, kms_key_arn: str, endpoint: str, model: str, lines: bytes, now: datetime) -> str:
    """Keep a request's scored records for drift checks; returns the object's URI."""
    key = scored_key(endpoint, model, now)
    put_scored(s3, bucket, kms_key_arn, key, lines)
    return f"s3://{bucket}/{key}"


def score_records(
    event: dict,
    endpoint: str,
    bucket: str,
    sagemaker: SageMakerClient,
    s3: S3Client,
    runtime: SageMakerRuntimeClient,
    kms_key_arn: str = "",
    now: datetime | None = None,
) -> ScoreResponse:
    """A function URL event (payload format 2.0) in, the answer out; the scored records kept under ``scored/``
    with SSE-KMS (``kms_key_arn``, else the bucket's default key)."""
    try:
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "POST")
        if method != "POST":
            raise RequestError(405, "POST the records (text/csv with a header, or application/json)")
        raw = event.get("body") or ""
        data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
        if len(data) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(400, f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in {"text/csv", "text/plain"}:
            records = records_from_csv(text)
        elif kind in {"application/json", ""}:
            records = records_from_json(text)
        else:
            raise RequestError(415, f"content-type {kind} is not text/csv or application/json")
        try:
            view = serving_view(endpoint, bucket, sagemaker, s3)
        except (SageMakerThrottlingError, SageMakerUnavailableError) as exc:
            raise RequestError(503, f"what endpoint {endpoint} serves cannot be read now: {exc}") from None
        scored = score_request(records, view, endpoint, runtime)
    except RequestError as exc:
        return ScoreResponse(exc.status, {"error": str(exc)})
    if not scored.lines:
        return ScoreResponse(200, scored.body)
    try:
        where = record(s3, bucket, kms_key_arn, endpoint, view.model_name, scored.lines, now or datetime.now(UTC))
    except (ClientError, BotoCoreError) as exc:  # the caller's answer does not wait on the drift record
        code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return ScoreResponse(200, scored.body, not_recorded=f"{code}: {exc}")
    return ScoreResponse(200, scored.body, recorded=where)
