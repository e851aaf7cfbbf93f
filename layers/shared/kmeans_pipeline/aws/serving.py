"""The model an endpoint serves, its evaluation report, and K-Means requests to and answers from the endpoint."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import error_code, error_message, sagemaker_call, translate
from kmeans_pipeline.aws.endpoints import describe_endpoint
from kmeans_pipeline.aws.objects import MISSING_CODES, read_body
from kmeans_pipeline.errors import (
    EndpointAnswerError,
    SageMakerRequestError,
    SageMakerThrottlingError,
    SageMakerUnavailableError,
)
from kmeans_pipeline.schemas.report import MAX_REPORT_BYTES, EvaluationReport, read_report

if TYPE_CHECKING:
    import numpy as np
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

REPORT_NAME = "report.json"
# A run that compares again under the deploy lease writes that comparison here, beside its report (never over it).
COMPARISON_NAME = "final-comparison.json"
# InvokeEndpoint takes at most 6 MB per request: stay well below it.
MAX_REQUEST_BYTES = 4_000_000


def serving_config(sagemaker: SageMakerClient, endpoint_name: str) -> str | None:
    """The endpoint config the endpoint serves now, or None when nothing serves (no endpoint, or a Failed one)."""
    endpoint = describe_endpoint(sagemaker, endpoint_name)
    if endpoint is None or not endpoint.current or endpoint.status == "Failed":
        return None  # a Failed endpoint answers no request
    return endpoint.current


def model_of_config(sagemaker: SageMakerClient, config_name: str) -> dict:
    """{"modelName", "modelDataUrl", "endpointConfigName", "createdAt", "modelPackageArn"} of the model an endpoint
    config serves (createdAt: the model's CreationTime, ISO 8601; modelPackageArn: the registered version it is made
    from, None for a model not made from one)."""
    with sagemaker_call("DescribeEndpointConfig", config_name):
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    model_name = config["ProductionVariants"][0]["ModelName"]
    with sagemaker_call("DescribeModel", model_name):
        model = sagemaker.describe_model(ModelName=model_name)
    container = dict(model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0])
    package = container.get("ModelPackageName")
    if isinstance(package, str) and not container.get("ModelDataUrl"):
        # A model made from a registered version: its artifact is the version's (DescribeModel need not show it).
        with sagemaker_call("DescribeModelPackage", package):
            described = sagemaker.describe_model_package(ModelPackageName=package)
        container = dict(described["InferenceSpecification"]["Containers"][0])
    return {
        "modelName": model_name,
        "modelDataUrl": container["ModelDataUrl"],
        "endpointConfigName": config_name,
        "modelPackageArn": package,
        "createdAt": model["CreationTime"].isoformat() if model.get("CreationTime") else None,
    }


def serving_model(sagemaker: SageMakerClient, endpoint_name: str) -> dict | None:
    """The model the endpoint serves now (as ``model_of_config``), or None."""
    config_name = serving_config(sagemaker, endpoint_name)
    return None if config_name is None else model_of_config(sagemaker, config_name)


def report_key(model_name: str) -> str:
    """Where the evaluation report of the run that made a model is (a model's name ends with its run's id)."""
    return f"reports/{model_name.rsplit('-', 1)[-1]}/{REPORT_NAME}"


def serving_report(s3: S3Client, bucket: str, model_name: str) -> EvaluationReport | None:
    """The evaluation report of the run that made the serving model; None when there is none (a model this
    pipeline did not train), ReportError naming the field when it is not a valid report."""
    key = report_key(model_name)
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise
    return read_report(read_body(answer, MAX_REPORT_BYTES + 1), f"s3://{bucket}/{key}")


def batches(rows: np.ndarray, limit: int = MAX_REQUEST_BYTES) -> list[tuple[int, bytes]]:
    """(first row index, text/csv body) pieces of the rows, each body at most ``limit`` bytes."""
    lines = [",".join(repr(float(v)) for v in row).encode() for row in rows]
    out: list[tuple[int, bytes]] = []
    start, size = 0, 0
    body: list[bytes] = []
    for index, line in enumerate(lines):
        if body and size + len(line) + 1 > limit:
            out.append((start, b"\n".join(body)))
            start, size, body = index, 0, []
        body.append(line)
        size += len(line) + 1
    if body:
        out.append((start, b"\n".join(body)))
    return out


def parse_answer(payload: bytes, rows: int, k: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(closest, distance) from K-Means' JSON answer, or EndpointAnswerError saying what is malformed."""
    try:
        predictions = json.loads(payload)["predictions"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EndpointAnswerError(f"{where}: the answer is not K-Means' JSON ({payload[:120]!r})") from exc
    if not isinstance(predictions, list) or len(predictions) != rows:
        count = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        raise EndpointAnswerError(f"{where}: {count} predictions for {rows} rows")
    import numpy as np  # only the steps that score ship numpy; the lease step reads the serving model here too

    closest = np.empty(rows, dtype=np.int64)
    distance = np.empty(rows, dtype=np.float64)
    for i, p in enumerate(predictions):
        try:
            c, d = float(p["closest_cluster"]), float(p["distance_to_cluster"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EndpointAnswerError(f"{where}, prediction {i}: malformed {str(p)[:120]}") from exc
        if not (math.isfinite(c) and c == int(c) and 0 <= c < k) or not (math.isfinite(d) and d >= 0):
            raise EndpointAnswerError(
                f"{where}, prediction {i}: closest_cluster {c} / distance_to_cluster {d} is not a cluster of 0..{k - 1} "
                "at a finite distance"
            )
        closest[i], distance[i] = int(c), d
    return closest, distance


# Transient: the endpoint's container is still loading the model.
NOT_READY = {"ModelNotReadyException"}


def invoke_endpoint(runtime: SageMakerRuntimeClient, endpoint: str, body: bytes) -> bytes:
    """One text/csv scoring request. The client retries throttling and 5xx itself; what still fails that way is
    raised as SageMakerThrottlingError or SageMakerUnavailableError (so is a model not ready yet), anything else as
    SageMakerRequestError naming the error code: each caller decides what they mean for it."""
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Accept="application/json", Body=body
        )
        return answer["Body"].read()
    except ClientError as exc:
        error = translate(exc, "InvokeEndpoint", endpoint)
        if isinstance(error, (SageMakerThrottlingError, SageMakerUnavailableError)):
            raise error from exc
        if error_code(exc) in NOT_READY:
            raise SageMakerUnavailableError(str(error)) from exc
        raise SageMakerRequestError(
            f"InvokeEndpoint on {endpoint} failed with {error_code(exc)}: {error_message(exc)}"
        ) from exc
