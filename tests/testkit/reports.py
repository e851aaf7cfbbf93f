"""A valid evaluation report made by hand, for the readers' tests (the CLI, the demo's view, the gate)."""

from __future__ import annotations

from typing import Any

from kmeans_pipeline.data.treatment import encode, raw_numbers
from kmeans_pipeline.schemas.dataset import FeatureTreatment
from kmeans_pipeline.schemas.report import EvaluationReport


def _distances(p99: float | None, top: float | None) -> dict:
    if p99 is None:
        return dict.fromkeys(("p50", "p90", "p95", "p99", "p999", "max"))
    return {"p50": p99 / 5, "p90": p99 / 2, "p95": p99 * 0.7, "p99": p99, "p999": p99 * 1.05, "max": top or p99}


def evaluation_report(
    centroids: list[list[float]],
    *,
    features: tuple[str, ...] = ("tranCode", "Amount"),
    treatment: FeatureTreatment | None = None,
    per_cluster: list[float | None] | None = None,
    overall: float | None = None,
    small: tuple[int, ...] = (),
    **changes: Any,
) -> dict:
    """The JSON of a report whose model has these centroids (in the CSV's units), validated; ``changes`` replace
    top-level camelCase keys after validation (to make a report that is not valid)."""
    treatment = treatment or raw_numbers(list(features))
    k = len(centroids)
    per_cluster = per_cluster if per_cluster is not None else [None] * k
    model_centroids = encode(treatment, centroids)[0].tolist()
    clusters = [
        {
            "index": i,
            "size": 100,
            "share": 1 / k,
            "distance": _distances(per_cluster[i], None if per_cluster[i] is None else per_cluster[i] * 3),
            "threshold": per_cluster[i],
            "ownThreshold": per_cluster[i],
            "small": i in small,
            "closestShare": 1 / k,
            "normalRange": None,
            "flaggedShare": 0.01,
            "nearestInside": None,
            "farthestBeyond": None,
            "centroid": centroid,
        }
        for i, centroid in enumerate(centroids)
    ]
    body = {
        "schemaVersion": 2,
        "runId": "abc123",
        "executionName": "run-abc",
        "trainingJob": "kmeans-dev-abc123-001-x",
        "hyperparameters": {"k": str(k), "feature_dim": str(treatment.feature_dim)},
        "modelArtifact": "s3://bucket/models/abc123/model.tar.gz",
        "dataset": {
            "trainUri": "s3://bucket/datasets/abc123/train/",
            "testUri": "s3://bucket/datasets/abc123/test/",
            "rawTestUri": None,
            "trainRows": 4000,
            "testRows": 1000,
            "source": {"bucket": "bucket", "key": "incoming/x.csv", "etag": "e", "size": 1},
        },
        "featureColumns": list(features),
        "treatment": treatment.to_json(),
        "featureNames": treatment.feature_names,
        "k": k,
        "testMsd": 12.5,
        "evaluationMsd": 12.4,
        "evaluatedRows": 1000,
        "anomalyPercentile": 99.0,
        "smallClusters": {
            "rule": "anomalous" if small else "normal",
            "clusters": list(small),
            "largeShare": 0.9,
            "sizeRatio": 5.0,
        },
        "thresholds": {"overall": overall, "perCluster": per_cluster},
        "centroids": centroids,
        "modelCentroids": model_centroids,
        "clusters": clusters,
        "distance": _distances(overall, None if overall is None else overall * 30),
        "flagged": {"perCluster": 10, "perClusterShare": 0.01, "overall": 10, "overallShare": 0.01},
        "gate": {
            "decision": "keep",
            "reason": "test MSD 12.4 against the serving model's 10 on the same 1,000 test rows",
            "newMsd": 12.4,
            "servingMsd": 10.0,
            "tolerancePercent": 5,
            "servingModel": "kmeans-dev-old",
        },
        "headline": "keep: the serving model kmeans-dev-old keeps serving. 1.00% of 1,000 test records lie beyond",
    }
    report = EvaluationReport.model_validate(body).to_json()
    report.update(changes)
    return report
