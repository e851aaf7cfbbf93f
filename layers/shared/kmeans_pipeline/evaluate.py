"""Step 5: judge the tuning job's best model before anything is deployed.

Scores the held-out test rows with the model's own centroids (numpy, no endpoint), writes the evaluation report
(JSON) under ``reports/<run id>/``, and decides whether the model may replace the one serving: it is compared with
the serving model on the same new test rows and promoted only if its mean squared distance is at most
``gateTolerancePercent`` worse. The first deploy always promotes; a model that is not promoted ends the run
successfully with the serving model kept.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from kmeans_pipeline.artifact import read_centroids
from kmeans_pipeline.aws import error_code, sagemaker_call
from kmeans_pipeline.deploy import describe_or_none
from kmeans_pipeline.errors import DataValidationError, ModelArtifactError
from kmeans_pipeline.models import BestTrainingJob, Dataset, Evaluation, GateDecision, RunConfig, Standardization
from kmeans_pipeline import scoring
from kmeans_pipeline.scoring import score, summarise
from kmeans_pipeline.settings import StackSettings
from kmeans_pipeline.split import parse_rows

# The test channel is already a random sample of the data: its first rows are a random sample too. At most a
# million rows, and at most 50 million values, so that wide data sets stay well inside the function's memory.
MAX_EVALUATION_ROWS = 1_000_000
MAX_EVALUATION_VALUES = 50_000_000
REPORT_NAME = "report.json"
TIE = 1e-6


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def read_rows(s3: Any, uri: str, limit: int, dim: int) -> np.ndarray:
    """Up to ``limit`` header-less CSV rows from the objects under a channel URI, in key order, as float64."""
    bucket, prefix = split_uri(uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    parts, left = [], limit
    for key in sorted(keys):
        if left <= 0:
            break
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            lines = [line for line in itertools.islice(body.iter_lines(), left) if line.strip()]
        finally:
            body.close()
        if lines:
            try:
                rows = parse_rows(b"\n".join(lines), dim)  # the data step's own channel format
            except DataValidationError as exc:
                raise DataValidationError(f"s3://{bucket}/{key}: {exc}") from exc
            parts.append(rows)
            left -= len(rows)
    if not parts:
        raise DataValidationError(f"{uri} holds no rows to evaluate the model on")
    return np.concatenate(parts)


def _transform(standardization: Standardization) -> scoring.Standardization:
    return scoring.Standardization(mean=standardization.mean, std=standardization.std)


def to_original_units(centroids: np.ndarray, standardization: Standardization | None) -> np.ndarray:
    if standardization is None:
        return np.asarray(centroids, dtype=np.float64)
    return _transform(standardization).invert(centroids)


def to_standardized(raw: np.ndarray, standardization: Standardization | None) -> np.ndarray:
    return raw if standardization is None else _transform(standardization).standardize(raw)


def msd(X: np.ndarray, centroids: np.ndarray) -> float:
    _, distance = score(X, centroids)
    return float(np.mean(distance.astype(np.float64) ** 2))


# ------------------------------------------------------------------------------------------------------------
# The serving model
# ------------------------------------------------------------------------------------------------------------


def serving_model(sagemaker: Any, endpoint_name: str) -> dict | None:
    """The model the endpoint serves now ({"modelName", "modelDataUrl", "endpointConfigName"}), or None."""
    with sagemaker_call("DescribeEndpoint", endpoint_name):
        endpoint = describe_or_none(sagemaker.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is None or not endpoint.get("EndpointConfigName") or endpoint["EndpointStatus"] == "Failed":
        return None  # nothing serves (a Failed endpoint answers no request)
    config_name = endpoint["EndpointConfigName"]
    with sagemaker_call("DescribeEndpointConfig", config_name):
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    model_name = config["ProductionVariants"][0]["ModelName"]
    with sagemaker_call("DescribeModel", model_name):
        model = sagemaker.describe_model(ModelName=model_name)
    return {
        "modelName": model_name,
        "modelDataUrl": model["PrimaryContainer"]["ModelDataUrl"],
        "endpointConfigName": config_name,
    }


def serving_report(s3: Any, bucket: str, model_name: str) -> dict | None:
    """The evaluation report of the run that made the serving model (its name ends with that run's id)."""
    run = model_name.rsplit("-", 1)[-1]
    try:
        body = s3.get_object(Bucket=bucket, Key=f"reports/{run}/{REPORT_NAME}")["Body"]
    except ClientError as exc:
        if error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
            return None  # deployed before reports existed: assume the same features, not standardised
        raise
    return json.loads(body.read())


def _serving_centroids(serving: dict, report: dict | None, s3: Any) -> np.ndarray | None:
    """The serving model's centroids: from its artifact, else (expired by the bucket's lifecycle) from its report,
    whose centroids are in original units (the report then says "standardization": null for them)."""
    try:
        return read_centroids(serving["modelDataUrl"], s3=s3)
    except ModelArtifactError:
        if report and report.get("centroids"):
            report["standardization"] = None  # the report's centroids are already in original units
            return np.asarray(report["centroids"], dtype=np.float32)
        return None


def gate(
    X: np.ndarray,
    new_msd: float,
    dataset: Dataset,
    config: RunConfig,
    serving: dict | None,
    serving_centroids: np.ndarray | None,
    report: dict | None,
) -> GateDecision:
    """Promote the new model, or keep the serving one; X holds the evaluation rows in the new model's units."""
    tolerance = config.gate_tolerance_percent
    if serving is None:
        return GateDecision(decision="promote", reason="first deploy: no model serves yet", new_msd=new_msd,
                            tolerance_percent=tolerance)
    if serving_centroids is None:
        return GateDecision(
            decision="promote", new_msd=new_msd, tolerance_percent=tolerance, serving_model=serving["modelName"],
            reason=f"the serving model {serving['modelName']} cannot be compared: neither its artifact "
            f"{serving['modelDataUrl']} nor its report can be read (expired?), so the new model is deployed",
        )
    features = (report or {}).get("featureColumns") or dataset.feature_columns
    if features != dataset.feature_columns or serving_centroids.shape[1] != dataset.feature_dim:
        return GateDecision(
            decision="promote", new_msd=new_msd, tolerance_percent=tolerance, serving_model=serving["modelName"],
            reason=f"the serving model {serving['modelName']} clusters {features}, this one {dataset.feature_columns}: "
            "their scores are not comparable, so the new features are deployed",
        )
    # Both models score the same rows in the new model's units: the serving centroids go through their own
    # standardisation back to original units, then through this run's.
    theirs = (report or {}).get("standardization")
    served = to_original_units(serving_centroids, Standardization(**theirs) if theirs else None)
    served = to_standardized(served, dataset.standardization).astype(np.float32)
    serving_msd = msd(X, served)
    # Scores equal to float32 precision count as equal (the same model, re-scored, must pass a 0% tolerance).
    limit = serving_msd * (1 + tolerance / 100) * (1 + TIE)
    verdict = (
        f"test MSD {new_msd:,.6g} against the serving model's {serving_msd:,.6g} on the same {len(X):,} test rows "
        f"(at most {limit:,.6g} allowed with a {tolerance:g}% tolerance)"
    )
    if new_msd <= limit:
        return GateDecision(decision="promote", reason=verdict, new_msd=new_msd, serving_msd=serving_msd,
                            tolerance_percent=tolerance, serving_model=serving["modelName"])
    return GateDecision(decision="keep", reason=verdict + f": {serving['modelName']} keeps serving",
                        new_msd=new_msd, serving_msd=serving_msd, tolerance_percent=tolerance,
                        serving_model=serving["modelName"])


# ------------------------------------------------------------------------------------------------------------
# The step
# ------------------------------------------------------------------------------------------------------------


def evaluate(
    config: RunConfig, dataset: Dataset, best: BestTrainingJob, settings: StackSettings, s3: Any, sagemaker: Any
) -> Evaluation:
    centroids = read_centroids(best.artifact_uri, s3=s3)
    if centroids.shape != (config.k, dataset.feature_dim):
        raise ModelArtifactError(
            f"{best.artifact_uri} holds {centroids.shape[0]} centroids of {centroids.shape[1]} features; "
            f"this run trained k={config.k} on {dataset.feature_dim} features"
        )
    limit = min(MAX_EVALUATION_ROWS, MAX_EVALUATION_VALUES // dataset.feature_dim)
    X = read_rows(s3, dataset.test_uri, limit, dataset.feature_dim)
    closest, distance = score(X, centroids)
    new_msd = float(np.mean(distance.astype(np.float64) ** 2))
    summary = summarise(closest, distance, config.k, config.anomaly_percentile)

    serving = serving_model(sagemaker, config.names.endpoint)
    serving_centroids = report = None
    if serving is not None:
        report = serving_report(s3, settings.data_bucket, serving["modelName"])
        serving_centroids = _serving_centroids(serving, report, s3)
    decision = gate(X, new_msd, dataset, config, serving, serving_centroids, report)

    original = to_original_units(centroids, dataset.standardization)
    flagged = summary["flagged"]["perClusterShare"]
    headline = (
        f"{decision.decision}: {decision.reason}. {flagged:.2%} of {len(X):,} test records lie beyond the "
        f"{config.anomaly_percentile:g}th-percentile distance of their cluster"
    )
    body = {
        "schemaVersion": 1,
        "runId": config.run_id,
        "executionName": config.execution_name,
        "trainingJob": best.training_job_name,
        "hyperparameters": best.hyperparameters,
        "modelArtifact": best.artifact_uri,
        "dataset": {"trainUri": dataset.train_uri, "testUri": dataset.test_uri, "trainRows": dataset.train_rows,
                    "testRows": dataset.test_rows, "source": dataset.source.to_json()},
        "featureColumns": dataset.feature_columns,
        "standardization": dataset.standardization.to_json() if dataset.standardization else None,
        "k": config.k,
        "testMsd": best.test_msd,
        "evaluationMsd": new_msd,
        "evaluatedRows": int(len(X)),
        "anomalyPercentile": config.anomaly_percentile,
        "thresholds": {"overall": summary["threshold"],
                       "perCluster": [cluster["threshold"] for cluster in summary["clusters"]]},
        "centroids": original.tolist(),
        "clusters": [
            {**cluster, "centroid": original[cluster["index"]].tolist()} for cluster in summary["clusters"]
        ],
        "distance": summary["distance"],
        "flagged": summary["flagged"],
        "gate": decision.to_json(),
        "headline": headline,
    }
    key = f"{config.report_prefix}{REPORT_NAME}"
    s3.put_object(
        Bucket=settings.data_bucket, Key=key, Body=json.dumps(body, indent=1).encode(),
        ContentType="application/json", ServerSideEncryption="aws:kms", SSEKMSKeyId=settings.kms_key_arn,
    )
    return Evaluation(
        report_uri=f"s3://{settings.data_bucket}/{key}",
        headline=headline,
        gate=decision,
        evaluated_rows=int(len(X)),
        flagged_share=flagged,
        overall_threshold=summary["threshold"],
    )
