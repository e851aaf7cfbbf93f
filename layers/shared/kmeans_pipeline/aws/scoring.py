"""Scoring records with the serving model, as the scoring API and batch scoring both do it.

Each record's feature columns are turned into the serving model's features with the treatment its run recorded
(:func:`encode_records`), the endpoint scores them (:func:`score_features`: InvokeEndpoint in bodies under its
limit), and each record gets ``closest_cluster``, ``distance_to_cluster``, ``score`` (distance over its cluster's
threshold) and ``anomaly`` (score above 1); a record closest to a cluster its run called small and anomalous is
scored against the nearest other cluster. A record that cannot be scored gets an error naming the field.

What the endpoint serves is read with DescribeEndpoint on every call of :func:`serving_view`; the model's report
(treatment, thresholds) is read once per endpoint config and cached for the function's process
(:func:`~kmeans_pipeline.schemas.settings.function_cache`), so a new deployment is used as soon as it serves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kmeans_pipeline.aws.serving import (
    batches,
    invoke_endpoint,
    model_of_config,
    parse_answer,
    report_key,
    serving_config,
    serving_report,
)
from kmeans_pipeline.data.channels import FLOAT32_LIMIT, FLOAT32_MAX
from kmeans_pipeline.data.exact import parse_float
from kmeans_pipeline.data.treatment import encode, negative_log_values
from kmeans_pipeline.errors import DataValidationError, PipelineError
from kmeans_pipeline.model.explain import Explainer
from kmeans_pipeline.model.scoring import anomaly_score, refer
from kmeans_pipeline.schemas.dataset import FeatureTreatment
from kmeans_pipeline.schemas.report import EvaluationReport, ReportError
from kmeans_pipeline.schemas.settings import function_cache

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


class ServingUnavailable(PipelineError):
    """The endpoint serves no model this pipeline can score with (none yet, or one without its report)."""


@dataclass(frozen=True)
class ServingView:
    """What scoring needs of the model an endpoint config serves."""

    endpoint_config: str
    model_name: str
    report_uri: str | None
    treatment: FeatureTreatment
    thresholds: list[float | None]
    overall: float | None
    k: int
    # Clusters whose records are scored against the nearest other one, and the model's centroids to find it.
    small: list[int]
    centroids: np.ndarray | None
    # Why a flagged record is flagged, from the report's normal ranges (model.explain).
    explainer: Explainer


# Views by (bucket, endpoint config), kept for the function's process: a config names one run's model, so its report
# never changes.
VIEWS = "serving-views"


def serving_view(endpoint: str, bucket: str, sagemaker: SageMakerClient, s3: S3Client) -> ServingView:
    """The serving model's treatment and thresholds. DescribeEndpoint on every call, so that a new deployment
    is used as soon as it serves; the report is read once per endpoint config."""
    config_name = serving_config(sagemaker, endpoint)
    if config_name is None:
        raise ServingUnavailable(f"Endpoint {endpoint} serves no model yet: run the pipeline first")
    views: dict[tuple[str, str], ServingView] = function_cache(VIEWS)
    key = (bucket, config_name)
    if key not in views:
        serving = model_of_config(sagemaker, config_name)
        try:
            report = serving_report(s3, bucket, serving["modelName"])
        except ReportError as exc:
            raise ServingUnavailable(f"The serving model {serving['modelName']} cannot be used: {exc}") from None
        views[key] = _view(serving, report, bucket)
    return views[key]


def _view(serving: dict, report: EvaluationReport | None, bucket: str) -> ServingView:
    if report is None:
        raise ServingUnavailable(
            f"The serving model {serving['modelName']} has no evaluation report, so its "
            "features and thresholds are unknown: deploy a model trained by this pipeline"
        )
    small = report.small_clusters.clusters
    return ServingView(
        endpoint_config=serving["endpointConfigName"],
        model_name=serving["modelName"],
        report_uri=f"s3://{bucket}/{report_key(serving['modelName'])}",
        treatment=report.treatment,
        thresholds=report.thresholds.per_cluster,
        overall=report.thresholds.overall,
        k=report.k,
        small=small,
        centroids=np.asarray(report.model_centroids, dtype=np.float32) if small else None,
        explainer=Explainer(report),
    )


# ------------------------------------------------------------------------------------------------------------
# Records in
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ragged:
    """A CSV record whose field count is not the header's."""

    fields: int
    header: int


def record_value(record: Any, column: str, number: int) -> float:
    """A record's value of a feature column (a dict of column values), by the data step's rules for numbers."""
    if isinstance(record, Ragged):
        raise DataValidationError(f"record {number}: {record.fields} fields, but the header has {record.header}")
    if not isinstance(record, dict):
        raise DataValidationError(f"record {number} is not an object of column values")
    if column not in record or record[column] is None:
        raise DataValidationError(f"record {number}: field {column} is missing")
    value = record[column]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataValidationError(f"record {number}, field {column}: {json.dumps(value)[:40]} is not a number")
    if isinstance(value, str):
        try:  # the data step's own rules for what is a number
            return parse_float(value, number, column)
        except DataValidationError as exc:
            raise DataValidationError(
                str(exc).replace(f"line {number}, column ", f"record {number}, field ", 1)
            ) from None
    if not math.isfinite(value):
        raise DataValidationError(f"record {number}, field {column}: {value} is not a finite number")
    if not abs(value) < FLOAT32_LIMIT:  # the data step's rule: what SageMaker reads is float32
        raise DataValidationError(
            f"record {number}, field {column}: {value:g} is beyond float32's range (magnitudes up to {FLOAT32_MAX}), "
            "the numbers SageMaker reads"
        )
    return float(value)


@dataclass(frozen=True)
class Encoded:
    """The good records of a request: raw values (column order), model features, unseen levels, their indexes;
    and errors and warnings by record index."""

    raw: np.ndarray
    Z: np.ndarray
    unseen: np.ndarray
    good: list[int]
    errors: dict[int, str]
    warnings: dict[int, list[str]]


def encode_records(records: list[Any], treatment: FeatureTreatment) -> Encoded:
    """Each record's feature columns read (errors by index for those that cannot be), treated and encoded."""
    columns = treatment.input_columns
    good, rows, errors = [], [], {}
    for i, record in enumerate(records):
        try:
            rows.append([record_value(record, column, i) for column in columns])
            good.append(i)
        except DataValidationError as exc:
            errors[i] = str(exc)
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns))
    negative = negative_log_values(treatment, X)
    keep = np.asarray(~negative.any(1), dtype=bool)
    for r in np.flatnonzero(~keep):
        j = int(np.flatnonzero(negative[r])[0])
        errors[good[r]] = (
            f"record {good[r]}, field {columns[j]}: {X[r, j]:g} is negative, and the model takes "
            f"log1p({columns[j]}), which needs values >= 0"
        )
    good = [g for g, k in zip(good, keep.tolist()) if k]
    raw = X[keep]
    Z, unseen = encode(treatment, raw)
    # A value its treatment takes beyond float32 (a z-score of a far value, with a tiny standard deviation) cannot be
    # sent to the endpoint: that record's error names it, the others are scored.
    beyond = ~(np.abs(Z) < FLOAT32_LIMIT)
    for r in np.flatnonzero(beyond.any(1)):
        feature = treatment.feature_names[int(np.flatnonzero(beyond[r])[0])]
        errors[good[r]] = (
            f"record {good[r]}: its feature {feature} is beyond float32's range once treated as the model was"
        )
    fine = ~beyond.any(1)
    good = [g for g, k in zip(good, fine.tolist()) if k]
    raw, Z, unseen = raw[fine], Z[fine], unseen[fine]
    warnings: dict[int, list[str]] = {}
    for r, j in zip(*np.nonzero(unseen)):
        warnings.setdefault(good[r], []).append(
            f"field {columns[j]}: level {raw[r, j]:g} was not seen in training (levels "
            f"{', '.join(f'{v:g}' for v in treatment.columns[j].levels or [])}); scored with none of them set"
        )
    return Encoded(raw, Z, unseen, good, errors, warnings)


# ------------------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """The endpoint's answers for encoded records, and their scores: per record, in order."""

    closest: np.ndarray
    distance: np.ndarray
    reference: np.ndarray  # the cluster each is scored against (its closest, unless that one is small)
    referred: np.ndarray  # its distance to that cluster
    scores: np.ndarray

    def explanations(self, view: ServingView, encoded: Encoded) -> dict[int, Any]:
        """Why each flagged record (score above 1) is flagged, by its position among the encoded records."""
        flagged = np.flatnonzero(self.scores > 1)
        found = view.explainer.explain_many(
            encoded.raw[flagged], encoded.Z[flagged], encoded.unseen[flagged], self.reference[flagged]
        )
        return dict(zip(flagged.tolist(), found))


def record_answers(view: ServingView, encoded: Encoded, scored: Scored) -> dict[int, dict[str, Any]]:
    """What each scored record gets, by its index among the records: the scoring API's answer and batch scoring's
    columns are both this. ``reference_cluster`` and ``distance_to_reference`` only for a record closest to a small
    cluster (scored against the nearest other one); ``explanation`` and ``reasons`` only for a flagged record;
    ``warnings`` only for one with a category level the model never saw."""
    explanations = scored.explanations(view, encoded)
    answers: dict[int, dict[str, Any]] = {}
    for r, i in enumerate(encoded.good):
        score = float(scored.scores[r])
        answer: dict[str, Any] = {
            "closest_cluster": int(scored.closest[r]),
            "distance_to_cluster": float(scored.distance[r]),
            "score": score if math.isfinite(score) else None,
            "anomaly": bool(score > 1),
        }
        if scored.reference[r] != scored.closest[r]:
            answer["reference_cluster"] = int(scored.reference[r])
            answer["distance_to_reference"] = float(scored.referred[r])
        if r in explanations:
            answer["explanation"] = explanations[r].text
            answer["reasons"] = [reason.to_json() for reason in explanations[r].reasons]
        if i in encoded.warnings:
            answer["warnings"] = encoded.warnings[i]
        answers[i] = answer
    return answers


def score_features(
    Z: np.ndarray, view: ServingView, endpoint: str, runtime: SageMakerRuntimeClient, invoke: Any = invoke_endpoint
) -> Scored:
    """Score encoded records with the endpoint, in request bodies under InvokeEndpoint's limit. ``invoke(runtime,
    endpoint, body)`` sends one (the API maps its errors to HTTP statuses); EndpointAnswerError if an answer is
    not K-Means'."""
    closest = np.empty(len(Z), dtype=np.int64)
    distance = np.empty(len(Z), dtype=np.float64)
    pieces = batches(Z.astype(np.float32))
    for number, (start, body) in enumerate(pieces, 1):
        end = pieces[number][0] if number < len(pieces) else len(Z)
        closest[start:end], distance[start:end] = parse_answer(
            invoke(runtime, endpoint, body), end - start, view.k, f"request {number} of {len(pieces)}"
        )
    reference, referred = refer(Z, closest, distance, view.centroids, view.small)
    scores = anomaly_score(reference, referred, view.thresholds, view.overall)
    return Scored(closest, distance, reference, referred, scores)
