"""Evaluate model: judge the tuning job's best model before anything is deployed.

Scores the held-out test rows with the model's own centroids (numpy, no endpoint), writes the evaluation report
(JSON) under ``reports/<run id>/``, and decides whether the model may replace the one serving: it is compared with
the serving model on the same new test rows and promoted only if its mean squared distance is at most
``gateTolerancePercent`` worse. The first deploy always promotes, and so does a change of feature treatment (the
scores are not comparable); a model that is not promoted ends the run successfully with the serving model kept.

Under the deploy lease ("Compare with the model serving now", when another model serves than the one compared with),
the comparison is made again and written to ``reports/<run id>/final-comparison.json``: the report the run's version
registered (with its digest) is never rewritten, and it stays what scoring and later gates read of this model (the
second comparison changes neither its thresholds nor its treatment).

The report carries what scoring needs (the treatment, the model's centroids, each cluster's threshold) and what a
person reads: each cluster's centroid and normal range in the CSV's units, the share it flags, and the test records
nearest inside and farthest beyond its threshold. With ``smallClusters: anomalous``, the records closest to a
small cluster (``scoring.small_clusters``) are measured against the nearest other one, here and wherever the
model's records are scored; the report lists those clusters.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from kmeans_pipeline.aws.registry import read_evidence, report_digest
from kmeans_pipeline.aws.serving import COMPARISON_NAME, REPORT_NAME, report_key, serving_model, serving_report
from kmeans_pipeline.data.channels import read_rows
from kmeans_pipeline.data.treatment import axis_range, comparable, from_base, raw_numbers, to_base, to_original
from kmeans_pipeline.errors import ModelArtifactError
from kmeans_pipeline.model.artifact import read_centroids
from kmeans_pipeline.model.clusters import EXPLAINED_SHARE, judge_small_clusters
from kmeans_pipeline.model.drift import baseline
from kmeans_pipeline.model.scoring import (
    LARGE_SHARE,
    MIN_CLUSTER_DISTANCES,
    SIZE_RATIO,
    anomaly_score,
    refer,
    score,
    small_clusters,
    summarise,
)
from kmeans_pipeline.schemas.dataset import Dataset, FeatureTreatment
from kmeans_pipeline.schemas.report import (
    Baseline,
    ClusterReport,
    Distances,
    EvaluationReport,
    FinalComparison,
    Flagged,
    ReportDataset,
    ReportError,
    SmallClusterDecision,
    SmallClusterRule,
    Thresholds,
)
from kmeans_pipeline.schemas.results import BestTrainingJob, Evaluation, GateDecision
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

# The test channel is already a random sample of the data: its first rows are a random sample too. At most a
# million rows, and at most 50 million values, so that wide data sets stay well inside the function's memory.
MAX_EVALUATION_ROWS = 1_000_000
MAX_EVALUATION_VALUES = 50_000_000
TIE = 1e-6


def msd(X: np.ndarray, centroids: np.ndarray) -> float:
    _, distance = score(X, centroids)
    return float(np.mean(distance.astype(np.float64) ** 2))


# ------------------------------------------------------------------------------------------------------------
# The serving model
# ------------------------------------------------------------------------------------------------------------


def dataset_treatment(dataset: Dataset) -> FeatureTreatment:
    return dataset.treatment or raw_numbers(dataset.feature_columns)


def serving_side(serving: dict, s3: S3Client, bucket: str) -> tuple[np.ndarray | None, FeatureTreatment | None, str]:
    """(the serving model's centroids, its treatment, why it cannot be compared): the centroids from its artifact,
    else (expired by the bucket's lifecycle) its report's ``modelCentroids``; the treatment from its report. A
    report that is missing or not valid leaves the model without a treatment, and says why."""
    try:
        report = serving_report(s3, bucket, serving["modelName"])
    except ReportError as exc:
        report, problem = None, str(exc)
    else:
        problem = "" if report else f"it has no evaluation report at s3://{bucket}/{report_key(serving['modelName'])}"
    try:
        centroids: np.ndarray | None = read_centroids(serving["modelDataUrl"], s3=s3)
    except ModelArtifactError:
        centroids = None if report is None else np.asarray(report.model_centroids, dtype=np.float32)
    return centroids, None if report is None else report.treatment, problem


def gate(
    X: np.ndarray,
    new_msd: float,
    dataset: Dataset,
    config: RunConfig,
    serving: dict | None,
    serving_centroids: np.ndarray | None,
    theirs: FeatureTreatment | None,
    problem: str = "",
    strictly_better: bool = False,
) -> GateDecision:
    """Promote the new model, or keep the serving one; X holds the evaluation rows in the new model's units.
    ``theirs`` is the serving model's treatment (from its report), None when unknown, and ``problem`` says why.
    ``strictly_better``: a score equal to the serving model's (to float32 precision) keeps it."""
    tolerance = config.gate_tolerance_percent
    if serving is None:
        return GateDecision(
            decision="promote", reason="first deploy: no model serves yet", new_msd=new_msd, tolerance_percent=tolerance
        )
    if serving_centroids is None or theirs is None:
        why = problem if theirs is None else f"its artifact {serving['modelDataUrl']} cannot be read (expired?)"
        return GateDecision(
            decision="promote",
            new_msd=new_msd,
            tolerance_percent=tolerance,
            serving_model=serving["modelName"],
            reason=f"the serving model {serving['modelName']} cannot be compared: {why}, so the new model is deployed",
        )
    ours = dataset_treatment(dataset)
    different = comparable(theirs, ours)
    if different is None and serving_centroids.shape[1] != ours.feature_dim:
        different = f"the serving model has {serving_centroids.shape[1]} features, this one {ours.feature_dim}"
    if different:
        return GateDecision(
            decision="promote",
            new_msd=new_msd,
            tolerance_percent=tolerance,
            serving_model=serving["modelName"],
            reason=f"{serving['modelName']} is not comparable with this model ({different}): "
            "their scores are not comparable, so the new features are deployed",
        )
    # Both models score the same rows in the new model's units: the serving centroids go through their own
    # standardisation back to the treatment's base units (x, log1p(x), one-hot), then through this run's.
    served = from_base(ours, to_base(theirs, serving_centroids)).astype(np.float32)
    serving_msd = msd(X, served)
    # Scores equal to float32 precision count as equal (the same model, re-scored, must pass a 0% tolerance, and
    # must not pass where only a better model may replace the serving one).
    if strictly_better:
        limit = serving_msd * (1 + tolerance / 100) * (1 - TIE)
        allowed = f"below {limit:,.6g} needed: only a better model replaces one an overlapping execution deployed"
        passed = new_msd < limit
    else:
        limit = serving_msd * (1 + tolerance / 100) * (1 + TIE)
        allowed = f"at most {limit:,.6g} allowed with a {tolerance:g}% tolerance"
        passed = new_msd <= limit
    verdict = (
        f"test MSD {new_msd:,.6g} against the serving model's {serving_msd:,.6g} on the same {len(X):,} test rows "
        f"({allowed})"
    )
    if passed:
        return GateDecision(
            decision="promote",
            reason=verdict,
            new_msd=new_msd,
            serving_msd=serving_msd,
            tolerance_percent=tolerance,
            serving_model=serving["modelName"],
        )
    return GateDecision(
        decision="keep",
        reason=verdict + f": {serving['modelName']} keeps serving",
        new_msd=new_msd,
        serving_msd=serving_msd,
        tolerance_percent=tolerance,
        serving_model=serving["modelName"],
    )


# ------------------------------------------------------------------------------------------------------------
# The step
# ------------------------------------------------------------------------------------------------------------


def _record(treatment: FeatureTreatment, raw: np.ndarray, distance: np.ndarray, scores: np.ndarray, i: int) -> dict:
    return {
        "values": dict(zip(treatment.input_columns, raw[i].tolist())),
        "distance": float(distance[i]),
        "score": float(scores[i]),
    }


def _cluster_view(
    treatment: FeatureTreatment,
    centroids: np.ndarray,
    raw: np.ndarray,
    closest: np.ndarray,
    distance: np.ndarray,
    scores: np.ndarray,
    cluster: dict,
    overall: float | None,
) -> dict:
    """What a person reads of one cluster: its normal range per column, the share it flags, and the test records
    nearest inside and farthest beyond its threshold (the overall one where it has none), in the CSV's units."""
    index = cluster["index"]
    threshold = overall if cluster["threshold"] is None else cluster["threshold"]
    members = np.flatnonzero(closest == index)
    view: dict[str, Any] = {
        "normalRange": None if threshold is None else axis_range(treatment, centroids[index], threshold),
        "flaggedShare": float((scores[members] > 1).mean()) if len(members) else 0.0,
        "nearestInside": None,
        "farthestBeyond": None,
    }
    inside, beyond = members[scores[members] <= 1], members[scores[members] > 1]
    if len(inside):
        view["nearestInside"] = _record(treatment, raw, distance, scores, int(inside[np.argmax(scores[inside])]))
    if len(beyond):
        view["farthestBeyond"] = _record(treatment, raw, distance, scores, int(beyond[np.argmax(scores[beyond])]))
    return view


def _judge_small_clusters(
    config: RunConfig, dataset: Dataset, centroids: np.ndarray, s3: S3Client, limit: int
) -> list[SmallClusterDecision]:
    """CBLOF's small clusters (from the training rows) and what each is taken for, by the run's rule: auto judges
    each by the category columns (model.clusters), anomalous calls every one a group of anomalies, normal none."""
    if config.small_clusters == "normal":
        return []
    Z = read_rows(s3, dataset.train_uri, limit, dataset.feature_dim)
    trained, _ = score(Z, centroids)
    small = small_clusters(trained, dataset.k)
    if config.small_clusters == "auto":
        return judge_small_clusters(Z, trained, dataset.k, small, dataset_treatment(dataset))
    sizes = np.bincount(trained, minlength=dataset.k)
    return [
        SmallClusterDecision(
            index=index,
            training_rows=int(sizes[index]),
            anomalous=True,
            reason="smallClusters is anomalous: scored against the nearest large cluster",
        )
        for index in small
    ]


def _report(
    config: RunConfig,
    dataset: Dataset,
    best: BestTrainingJob,
    treatment: FeatureTreatment,
    summary: dict,
    judged: list[SmallClusterDecision],
    clusters: list[ClusterReport],
    centroids: np.ndarray,
    original: np.ndarray,
    decision: GateDecision,
    headline: str,
    drift_baseline: Baseline,
) -> EvaluationReport:
    """The report: the run, the model, the data, and what the evaluation found (``summary``, ``clusters``)."""
    return EvaluationReport(
        run_id=config.run_id,
        execution_name=config.execution_name,
        training_job=best.training_job_name,
        hyperparameters=best.hyperparameters,
        model_artifact=best.artifact_uri,
        dataset=ReportDataset(
            train_uri=dataset.train_uri,
            test_uri=dataset.test_uri,
            raw_test_uri=dataset.raw_test_uri,
            train_rows=dataset.train_rows,
            test_rows=dataset.test_rows,
            source=dataset.source,
        ),
        feature_columns=dataset.feature_columns,
        treatment=treatment,
        feature_names=treatment.feature_names,
        k=dataset.k,
        k_choice=dataset.k_choice,
        test_msd=best.test_msd,
        evaluation_msd=decision.new_msd,
        evaluated_rows=summary["records"],
        anomaly_percentile=config.anomaly_percentile,
        small_clusters=SmallClusterRule(
            rule=config.small_clusters,
            clusters=[j.index for j in judged if j.anomalous],
            large_share=LARGE_SHARE,
            size_ratio=SIZE_RATIO,
            explained_share=EXPLAINED_SHARE,
            decisions=judged,
        ),
        thresholds=Thresholds(
            overall=summary["threshold"],
            per_cluster=[c.threshold for c in clusters],
            rule=(
                f"every record against the overall {config.anomaly_percentile:g}th-percentile test distance; a "
                f"cluster's own percentile (ownThreshold) is shown where it has at least {MIN_CLUSTER_DISTANCES} "
                "test distances, and ranks nothing"
            ),
        ),
        centroids=original.tolist(),
        model_centroids=np.asarray(centroids, dtype=np.float64).tolist(),
        clusters=clusters,
        distance=Distances.model_validate(summary["distance"]),
        flagged=Flagged.model_validate(summary["flagged"]),
        gate=decision,
        headline=headline,
        baseline=drift_baseline,
    )


def evaluate_model(
    config: RunConfig,
    dataset: Dataset,
    best: BestTrainingJob,
    settings: StackSettings,
    s3: S3Client,
    sagemaker: SageMakerClient,
    strictly_better: bool = False,
    under_lease: bool = False,
) -> Evaluation:
    """Evaluate the run's model; ``under_lease``: compare it again with the model serving now, beside the report."""
    centroids = read_centroids(best.artifact_uri, s3=s3)
    if centroids.shape != (dataset.k, dataset.feature_dim):
        raise ModelArtifactError(
            f"{best.artifact_uri} holds {centroids.shape[0]} centroids of {centroids.shape[1]} features; "
            f"this run trained k={dataset.k} on {dataset.feature_dim} features"
        )
    limit = min(MAX_EVALUATION_ROWS, MAX_EVALUATION_VALUES // dataset.feature_dim)
    X = read_rows(s3, dataset.test_uri, limit, dataset.feature_dim)
    closest, distance = score(X, centroids)
    new_msd = float(np.mean(distance.astype(np.float64) ** 2))
    closest_share = np.bincount(closest, minlength=dataset.k) / max(len(closest), 1)
    # From here on, each record is measured against the cluster it is scored against (its closest one, unless the
    # run calls that one small). Which clusters are small is a property of the training data, read from its rows.
    judged = _judge_small_clusters(config, dataset, centroids, s3, limit)
    small = [j.index for j in judged if j.anomalous]
    closest, distance = refer(X, closest, distance, centroids, small)
    summary = summarise(closest, distance, dataset.k, config.anomaly_percentile)

    serving = serving_model(sagemaker, config.names.endpoint)
    if serving is None:
        decision = gate(X, new_msd, dataset, config, None, None, None)
    else:
        their_centroids, theirs, problem = serving_side(serving, s3, settings.data_bucket)
        decision = gate(X, new_msd, dataset, config, serving, their_centroids, theirs, problem, strictly_better)

    treatment = dataset_treatment(dataset)
    raw = X
    if dataset.raw_test_uri:  # the raw test rows, in the same order as the treated ones
        raw = read_rows(s3, dataset.raw_test_uri, len(X), len(treatment.columns))
    original = to_original(treatment, centroids)
    thresholds = [cluster["threshold"] for cluster in summary["clusters"]]
    scores = anomaly_score(closest, distance, thresholds, summary["threshold"])
    flagged = summary["flagged"]["overallShare"]
    headline = (
        f"{decision.decision}: {decision.reason}. k={dataset.k} ({dataset.k_choice.source}). {flagged:.2%} of "
        f"{len(X):,} test records score above 1 (beyond the {config.anomaly_percentile:g}th-percentile distance)"
    )
    if small:
        headline += (
            f"; the {float(closest_share[small].sum()):.2%} of them closest to the small cluster(s) "
            f"{', '.join(map(str, small))} are scored against the nearest of the others"
        )
    clusters = [
        ClusterReport.model_validate(
            {
                **cluster,
                "small": cluster["index"] in small,
                "closestShare": float(closest_share[cluster["index"]]),
                **_cluster_view(treatment, centroids, raw, closest, distance, scores, cluster, summary["threshold"]),
                "centroid": original[cluster["index"]].tolist(),
            }
        )
        for cluster in summary["clusters"]
    ]
    # What drift checks compare live traffic with: the test rows' raw values and the distances they are scored at.
    drift_baseline = Baseline.model_validate(baseline(treatment, raw, distance))
    report = _report(
        config,
        dataset,
        best,
        treatment,
        summary,
        judged,
        clusters,
        centroids,
        original,
        decision,
        headline,
        drift_baseline,
    )
    key = f"{config.report_prefix}{REPORT_NAME}"
    evaluation = Evaluation(
        report_uri=f"s3://{settings.data_bucket}/{key}",
        headline=headline,
        gate=decision,
        evaluated_rows=int(len(X)),
        flagged_share=flagged,
        overall_threshold=summary["threshold"],
    )
    if under_lease:
        return _write_comparison(evaluation, config, settings, s3, strictly_better)
    _put_json(s3, settings, key, report.to_json())
    return evaluation


def _put_json(s3: S3Client, settings: StackSettings, key: str, document: dict) -> None:
    s3.put_object(
        Bucket=settings.data_bucket,
        Key=key,
        Body=json.dumps(document, indent=1).encode(),
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=settings.kms_key_arn,
    )


def _write_comparison(
    evaluation: Evaluation, config: RunConfig, settings: StackSettings, s3: S3Client, strictly_better: bool
) -> Evaluation:
    """The comparison made again under the deploy lease, in its own object naming the report it leaves unchanged."""
    key = f"{config.report_prefix}{COMPARISON_NAME}"
    comparison = FinalComparison(
        run_id=config.run_id,
        execution_name=config.execution_name,
        report_uri=evaluation.report_uri,
        report_digest=report_digest(read_evidence(s3, evaluation.report_uri)),
        evaluated_rows=evaluation.evaluated_rows,
        strictly_better=strictly_better,
        gate=evaluation.gate,
        headline=evaluation.headline,
    )
    _put_json(s3, settings, key, comparison.to_json())
    return evaluation.model_copy(update={"comparison_uri": f"s3://{settings.data_bucket}/{key}"})
