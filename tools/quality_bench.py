"""`make bench-quality`: how many known anomalies the pipeline finds, with its defaults, against IsolationForest.

    python tools/quality_bench.py [--seeds 3] [--rows 100000] [--input JSON] [--only transactions|breast-cancer]

Two labelled data sets, each for several seeds:

- transactions: the demo's own sample (offline/sample_data.py: tranCode 1-5, heavy-tailed amounts, 0.5% injected
  anomalies);
- breast cancer: scikit-learn's Wisconsin breast cancer data (shipped with the package, no download), the benign
  records plus malignant ones subsampled to 5% of the set as the anomalies (a standard construction).

Each CSV runs through the whole pipeline offline (offline/runner.py: the real state machine and handlers, the
SageMaker stand-in) with the input a user gives by default (``{}``: auto treatments, the stack's k; ``--input``
adds to it, e.g. ``{"standardize": false}`` for the raw numbers). Every record
is then scored with the deployed model as the scoring API does (the report's treatment and thresholds), and the
bench prints the average precision (AP) of the distance and of the anomaly score, recall and precision at each
cluster's threshold and at the overall one, and the AP of scikit-learn's IsolationForest (default settings) on the
same raw feature columns. A last column shows what CBLOF's small-cluster rule (He et al. 2003, as PyOD applies it:
the largest clusters that hold 90% of the records are "large"; a record closest to a small one is scored by its
distance to the nearest large one) would make of the same deployed model: it lifts AP where the anomalies form a
cluster of their own, and costs it where a rare but normal group does (a line of business with 5% of the rows).
Exits 1 when a goal is missed: on transactions AP >= 0.85 and recall >= 90% at the
overall threshold for every seed; on breast cancer, a mean AP at least IsolationForest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kmeans_pipeline.artifact import split_s3_uri
from kmeans_pipeline.treatment import encode, from_report
from offline import report_view
from offline.runner import OfflineAWS
from offline.sample_data import generate

GOAL_AP, GOAL_RECALL = 0.85, 0.90
KEY = "incoming/data.csv"


def transactions(directory: Path, seed: int, rows: int) -> tuple[Path, set[int]]:
    sample = generate(directory, rows=rows, seed=seed)
    return sample.csv_path, set(sample.anomaly_lines)


def breast_cancer(directory: Path, seed: int) -> tuple[Path, set[int]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    benign, malignant = np.flatnonzero(data.target == 1), np.flatnonzero(data.target == 0)
    anomalies = round(0.05 * len(benign) / 0.95)
    order = np.concatenate([benign, rng.choice(malignant, anomalies, replace=False)])
    rng.shuffle(order)
    path = directory / "breast-cancer.csv"
    header = ",".join(name.replace(" ", "_") for name in data.feature_names)
    rows = [",".join(repr(float(v)) for v in data.data[i]) for i in order]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path, {line for line, i in enumerate(order, start=2) if data.target[i] == 0}


def small_cluster_rule(shares: np.ndarray, alpha: float = 0.9, beta: float = 5.0) -> np.ndarray:
    """CBLOF's large clusters: the biggest ones, in order, until they hold ``alpha`` of the records or the next one
    is ``beta`` times smaller; True where a cluster is large."""
    order = np.argsort(-shares, kind="stable")
    large = np.zeros(len(shares), dtype=bool)
    for rank, index in enumerate(order):
        large[index] = True
        if shares[order[: rank + 1]].sum() >= alpha * shares.sum():
            break
        if rank + 1 < len(order) and shares[index] >= beta * shares[order[rank + 1]]:
            break
    return large


def distance_to_large(report: dict, X: np.ndarray) -> np.ndarray:
    """Each row's distance to the nearest large cluster of the deployed model (CBLOF's score without its weights)."""
    Z, _ = encode(from_report(report), X)
    centroids = report_view.model_centroids(report)
    D = np.sqrt(((Z[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2))
    shares = np.bincount(D.argmin(axis=1), minlength=len(centroids)).astype(np.float64)
    return D[:, small_cluster_rule(shares)].min(axis=1)


def measure(csv_path: Path, anomaly_lines: set[int], name: str, overrides: dict) -> dict:
    from sklearn.ensemble import IsolationForest

    with OfflineAWS() as aws:
        aws.upload(csv_path, KEY)
        result = aws.run({"dataKey": KEY, "pollSeconds": 0, **overrides}, name)
        if result.status != "SUCCEEDED":
            raise RuntimeError(f"{name}: {result.error}: {result.cause}")
        bucket, key = split_s3_uri(result.output["evaluation"]["reportUri"])
        report = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    X, lines = report_view.read_rows(csv_path, report["featureColumns"])
    closest, distance, flagged = report_view.anomaly_scores(None, report, X=X)
    scores = report_view.scores(report, closest, distance)
    overall = report_view.flagged_overall(report, closest, distance)
    truth = np.isin(lines, sorted(anomaly_lines))
    forest = IsolationForest(random_state=0).fit(X)

    def rates(mask: np.ndarray) -> tuple[float, float]:
        caught = int((mask & truth).sum())
        return caught / truth.sum(), caught / max(int(mask.sum()), 1)

    return {
        "treatments": ", ".join(f"{c['column']}:{c['kind']}" for c in report["treatment"]["columns"])[:60],
        "k": report["k"],
        "ap_distance": report_view.average_precision(distance, truth),
        "ap_score": report_view.average_precision(scores, truth),
        "overall": rates(overall),
        "per_cluster": rates(flagged),
        "ap_forest": report_view.average_precision(-forest.score_samples(X), truth),
        "ap_cblof": report_view.average_precision(distance_to_large(report, X), truth),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each transactions sample")
    parser.add_argument("--input", default="{}", help="execution input added to the default one (JSON)")
    parser.add_argument("--only", choices=("transactions", "breast-cancer"))
    args = parser.parse_args(argv)
    overrides = json.loads(args.input)
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (
            ("transactions", lambda d, s: transactions(d, 7 + s, args.rows)),
            ("breast cancer", breast_cancer),
        ):
            if args.only and args.only != label.replace(" ", "-"):
                continue
            print(
                f"\n{label}: the pipeline with input {json.dumps(overrides)} against IsolationForest, "
                f"{args.seeds} seeds"
            )
            print(
                f"  {'seed':<5} {'AP dist':>8} {'AP score':>9} {'overall r/p':>13} {'cluster r/p':>13} "
                f"{'AP IForest':>11} {'AP CBLOF':>9} {'seconds':>8}  k, treatments"
            )
            found = []
            for seed in range(args.seeds):
                directory = Path(tmp) / f"{label.replace(' ', '-')}-{seed}"
                directory.mkdir()
                csv_path, lines = make(directory, seed)
                started = time.perf_counter()
                m = measure(csv_path, lines, f"quality-{label.replace(' ', '-')}-{seed}", overrides)
                found.append(m)
                print(
                    f"  {seed:<5} {m['ap_distance']:>8.3f} {m['ap_score']:>9.3f} "
                    f"{m['overall'][0]:>6.0%}/{m['overall'][1]:<6.0%} {m['per_cluster'][0]:>6.0%}/"
                    f"{m['per_cluster'][1]:<6.0%} {m['ap_forest']:>11.3f} {m['ap_cblof']:>9.3f} "
                    f"{time.perf_counter() - started:>8.1f}  "
                    f"{m['k']}, {m['treatments']}",
                    flush=True,
                )
            mean = {
                key: float(np.mean([m[key] for m in found]))
                for key in ("ap_distance", "ap_score", "ap_forest", "ap_cblof")
            }
            print(
                f"  mean  {mean['ap_distance']:>8.3f} {mean['ap_score']:>9.3f} {'':>27} {mean['ap_forest']:>11.3f} {mean['ap_cblof']:>9.3f}"
            )
            if label == "transactions":
                for seed, m in enumerate(found):
                    if m["ap_distance"] < GOAL_AP:
                        missed.append(f"transactions seed {seed}: AP {m['ap_distance']:.3f} < {GOAL_AP}")
                    if m["overall"][0] < GOAL_RECALL:
                        missed.append(f"transactions seed {seed}: recall {m['overall'][0]:.0%} < {GOAL_RECALL:.0%}")
            elif mean["ap_distance"] < mean["ap_forest"]:
                missed.append(
                    f"breast cancer: mean AP {mean['ap_distance']:.3f} < IsolationForest's {mean['ap_forest']:.3f}"
                )
    print("\nGoals: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
