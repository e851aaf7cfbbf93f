"""A model and report shaped like the demo's, made in-process from the project's own pieces: the demo's sample
(offline/sample_data.py), an 80/20 split, the data step's treatment learner, the stand-in's K-Means, the evaluation's
summary, normal ranges and drift baseline. For the tests of what reads a report (explanations, drift checks)
without running the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmeans_pipeline.data.treatment import TreatmentLearner, axis_range, encode, to_original
from kmeans_pipeline.model.drift import baseline
from kmeans_pipeline.model.scoring import flag, score, summarise
from kmeans_pipeline.schemas.report import EvaluationReport
from offline.sample_data import generate
from offline.standin.kmeans import KMeansParams, train
from testkit.reports import evaluation_report

COLUMNS = ["tranCode", "Amount"]


@dataclass
class DemoModel:
    report: EvaluationReport
    centroids: np.ndarray


@dataclass
class Traffic:
    raw: np.ndarray
    injected: np.ndarray  # True where the sample injected an anomaly (always in Amount)


def read_sample(directory: Path, rows: int, seed: int) -> Traffic:
    sample = generate(directory, rows=rows, seed=seed)
    raw = np.loadtxt(sample.csv_path, delimiter=",", skiprows=1, ndmin=2)
    injected = np.zeros(len(raw), dtype=bool)
    injected[np.asarray(sample.anomaly_lines) - 2] = True
    return Traffic(raw, injected)


def build(directory: Path, rows: int = 50_000, seed: int = 7, k: int = 9) -> DemoModel:
    """The demo's sample trained as the pipeline trains it (k=9, what the demo's data chooses), evaluated at the
    99th percentile with one overall threshold."""
    raw = read_sample(directory / f"train-{seed}", rows, seed).raw
    rng = np.random.default_rng(0)
    test = rng.random(len(raw)) < 0.2
    learner = TreatmentLearner(seed=0)
    learner.add(raw[~test], train=True)
    learner.add(raw[test], train=False)
    treatment = learner.decide(COLUMNS, {}, None)
    Z_train, _ = encode(treatment, raw[~test])
    Z_test, _ = encode(treatment, raw[test])
    centroids = train(
        Z_train[rng.permutation(len(Z_train))],
        KMeansParams(k=k, feature_dim=Z_train.shape[1]),
        rng=np.random.default_rng(1),
    )
    closest, distance = score(Z_test, centroids)
    summary = summarise(closest, distance, k)
    overall = summary["threshold"]
    body = evaluation_report(to_original(treatment, centroids).tolist(), treatment=treatment, overall=overall)
    flagged = flag(closest, distance, [None] * k, overall)
    body["modelCentroids"] = np.asarray(centroids, dtype=np.float64).tolist()
    body["flagged"] = {
        "perCluster": int(flagged.sum()),
        "perClusterShare": float(flagged.mean()),
        "overall": int(flagged.sum()),
        "overallShare": float(flagged.mean()),
    }
    body["distance"] = summary["distance"]
    for cluster, item in zip(body["clusters"], summary["clusters"]):
        cluster.update(
            size=item["size"],
            share=item["share"],
            distance=item["distance"],
            normalRange=axis_range(treatment, centroids[item["index"]], overall),
        )
    body["baseline"] = baseline(treatment, raw[test], distance)
    return DemoModel(EvaluationReport.model_validate(body), np.asarray(centroids, dtype=np.float32))
