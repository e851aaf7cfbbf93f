"""`make bench-quality`: how many known anomalies the pipeline finds, with its defaults, against IsolationForest.

    python tools/quality_bench.py [--seeds 3] [--rows 100000] [--input JSON] [--only transactions|breast-cancer]

Two labelled data sets, each for several seeds:

- transactions: the demo's own sample (offline/sample_data.py: tranCode 1-5, heavy-tailed amounts, 0.5% injected
  anomalies);
- breast cancer: scikit-learn's Wisconsin breast cancer data (shipped with the package, no download), the benign
  records plus malignant ones subsampled to 5% of the set as the anomalies (a standard construction).

Each CSV runs through the whole pipeline offline (offline/runner.py: the real state machine and handlers, the
SageMaker stand-in) with the input a user would give it: transactions with the defaults (``{}``: auto treatments,
the stack's k); breast cancer twice, with the defaults and with ``{"smallClusters": "anomalous"}``, the input for
data whose anomalies come as a group of similar records (here, malignant tumours: K-Means gives them a cluster of
their own, and distance to it calls them normal). ``--input`` adds to every input, e.g. ``{"standardize": false}``
for the raw numbers, or ``{"smallClusters": "anomalous"}`` to see what that rule costs on transactions, whose
wire transfers are a rare but normal group. Every record is then scored with the deployed model as the scoring API
does (the report's treatment, small clusters and thresholds), and the bench prints the average precision (AP) of the
distance and of the anomaly score, recall and precision at each cluster's threshold and at the overall one, and the
AP of scikit-learn's IsolationForest (default settings) on the same raw feature columns. Exits 1 when a goal is
missed: on transactions AP >= 0.85 and recall >= 90% at the overall threshold for every seed; on breast cancer with
``smallClusters: anomalous``, a mean AP at least IsolationForest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kmeans_pipeline.aws.uris import split_s3_uri
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
        for label, make, given, goal in (
            ("transactions", lambda d, s: transactions(d, 7 + s, args.rows), {}, "transactions"),
            ("breast cancer", breast_cancer, {}, None),
            ("breast cancer", breast_cancer, {"smallClusters": "anomalous"}, "grouped"),
        ):
            if args.only and args.only != label.replace(" ", "-"):
                continue
            run_input = {**given, **overrides}
            print(
                f"\n{label}: the pipeline with input {json.dumps(run_input)} against IsolationForest, "
                f"{args.seeds} seeds"
            )
            print(
                f"  {'seed':<5} {'AP dist':>8} {'AP score':>9} {'overall r/p':>13} {'cluster r/p':>13} "
                f"{'AP IForest':>11} {'seconds':>8}  k, treatments"
            )
            found = []
            for seed in range(args.seeds):
                directory = Path(tempfile.mkdtemp(dir=tmp))
                csv_path, lines = make(directory, seed)
                started = time.perf_counter()
                m = measure(csv_path, lines, f"quality-{label.replace(' ', '-')}-{seed}", run_input)
                found.append(m)
                print(
                    f"  {seed:<5} {m['ap_distance']:>8.3f} {m['ap_score']:>9.3f} "
                    f"{m['overall'][0]:>6.0%}/{m['overall'][1]:<6.0%} {m['per_cluster'][0]:>6.0%}/"
                    f"{m['per_cluster'][1]:<6.0%} {m['ap_forest']:>11.3f} "
                    f"{time.perf_counter() - started:>8.1f}  "
                    f"{m['k']}, {m['treatments']}",
                    flush=True,
                )
            mean = {key: float(np.mean([m[key] for m in found])) for key in ("ap_distance", "ap_score", "ap_forest")}
            print(f"  mean  {mean['ap_distance']:>8.3f} {mean['ap_score']:>9.3f} {'':>27} {mean['ap_forest']:>11.3f}")
            if goal == "transactions":
                for seed, m in enumerate(found):
                    if m["ap_distance"] < GOAL_AP:
                        missed.append(f"transactions seed {seed}: AP {m['ap_distance']:.3f} < {GOAL_AP}")
                    if m["overall"][0] < GOAL_RECALL:
                        missed.append(f"transactions seed {seed}: recall {m['overall'][0]:.0%} < {GOAL_RECALL:.0%}")
            elif goal == "grouped" and mean["ap_distance"] < mean["ap_forest"]:
                missed.append(
                    f"breast cancer (smallClusters anomalous): mean AP {mean['ap_distance']:.3f} < IsolationForest's {mean['ap_forest']:.3f}"
                )
    print("\nGoals: " + ("all met" if not missed else "MISSED: " + "; ".join(missed)))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
