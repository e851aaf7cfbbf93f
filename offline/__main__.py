"""`make demo`: run the deployed workflow offline, end to end, and show what it did.

    python -m offline [--data PATH] [--rows N] [--name NAME] [--input JSON] [--fail MODE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from offline.runner import ROOT, ExecutionResult, OfflineAWS, StateEvent
from offline.sample_data import generate
from offline.standin import Faults

FAIL_MODES = {
    "tuning": "the tuning job fails",
    "training": "every training job fails",
    "endpoint": "endpoint creation fails",
    "update": "a first run deploys, then the second run's endpoint update fails and rolls back",
    "throttle": "the first 3 calls of every SageMaker Create are throttled (retried, the run succeeds)",
}
POLL_STATES = {"Wait for tuning", "Has tuning finished?", "Wait for endpoint", "Is the endpoint in service?",
               "Wait for the other deployment", "Is the endpoint free?"}


def faults_for(mode: str | None) -> Faults:
    if mode == "tuning":
        return Faults(tuning_job_fails="InternalServerError: We encountered an internal error. Please try again. (injected)")
    if mode == "training":
        return Faults(training_jobs_fail="ClientError: Unable to parse the training data: injected failure")
    if mode == "endpoint":
        return Faults(endpoint_creation_fails="The primary container for production variant AllTraffic did not pass the ping health check (injected)")
    if mode == "throttle":
        return Faults(throttle_creates=3)
    return Faults()


class Progress:
    """Prints each state as it is entered and left, and the tuning job's progress, on stderr."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.entered: dict[str, float] = {}
        self.last_progress = ""

    def __call__(self, event: StateEvent) -> None:
        if event.kind == "entered":
            self.entered[event.state] = event.elapsed
            if event.state not in POLL_STATES and event.state not in {"Check tuning job", "Check endpoint"}:
                self._print(event.elapsed, f"> {event.state}")
            return
        took = event.elapsed - self.entered.get(event.state, event.elapsed)
        if event.state == "Check tuning job" and isinstance(event.output, dict):
            jobs = event.output.get("trainingJobs", {})
            best = event.output.get("bestSoFar")
            line = (f"  tuning {event.output.get('status')}: {jobs.get('completed', 0)} of {event.output.get('budget')} "
                    f"training jobs done ({jobs.get('inProgress', 0)} running, {jobs.get('failed', 0)} failed)"
                    + (f", best test:msd so far {best:,.4f}" if best is not None else ""))
            if line != self.last_progress:
                self._print(event.elapsed, line)
                self.last_progress = line
        elif event.state == "Check endpoint" and isinstance(event.output, dict):
            line = f"  endpoint {event.output.get('status')}"
            if line != self.last_progress:
                self._print(event.elapsed, line)
                self.last_progress = line
        elif event.state not in POLL_STATES:
            self._print(event.elapsed, f"< {event.state} ({took:.1f} s)")

    def _print(self, elapsed: float, text: str) -> None:
        print(f"[{elapsed:6.1f} s] {text}", file=self.stream, flush=True)


def summary(result: ExecutionResult, stream: Any) -> None:
    print(f"\nExecution {result.name}: {result.status} in {result.seconds:.1f} s", file=stream)
    print("Time per state (summed over visits):", file=stream)
    for state, seconds in result.state_seconds().items():
        print(f"  {state:<36} {seconds:7.2f} s", file=stream)
    if result.status != "SUCCEEDED":
        print(f"\nError: {result.error}\nCause: {result.cause}", file=stream)
        return
    out = result.output
    best = out["bestTrainingJob"]
    print(f"\nTuning job {out['tuningJob']}: {out['trainingJobs']['completed']} training jobs completed", file=stream)
    print(f"Best training job {best['trainingJobName']}: test:msd {best['testMsd']:,.4f}", file=stream)
    print("  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(best["hyperparameters"].items())), file=stream)
    print(f"Model {out['model']}, endpoint config {out['endpointConfig']}", file=stream)
    print(f"Endpoint {out['endpoint']}: {out['deployment']}"
          + (f" (was {out['previousEndpointConfig']})" if out.get("previousEndpointConfig") else ""), file=stream)


def score_examples(aws: OfflineAWS, csv_path: Path, features: list[str], stream: Any, lines: list[int] | None) -> None:
    """Send a few records' feature columns to the endpoint, as a caller would, and show its answers."""
    header, *rows = csv_path.read_text().splitlines()[:2001]
    names = [name.strip() for name in header.split(",")]
    columns = [names.index(f) for f in features]
    ordinary = rows[:3]
    anomalous = [rows[n - 2] for n in (lines or []) if n - 2 < len(rows)][:3]
    records = [",".join(record.split(",")[i] for i in columns) for record in ordinary + anomalous]
    answer = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=aws.endpoint_name, ContentType="text/csv", Accept="application/json", Body="\n".join(records).encode()
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    print(f"\nThe endpoint answers ({','.join(features)}):", file=stream)
    for i, (record, prediction) in enumerate(zip(records, predictions)):
        label = "injected anomaly" if i >= len(ordinary) else "ordinary"
        print(f"  {record:<20} -> cluster {prediction['closest_cluster']:.0f}, "
              f"distance {prediction['distance_to_cluster']:,.2f}   ({label})", file=stream)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make demo ARGS=...", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="your own CSV (header row, numeric feature columns)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of generated sample data (default 100000)")
    parser.add_argument("--name", help="execution name (1-80 letters, digits, - and _)")
    parser.add_argument("--input", default="{}", help="execution input overrides as JSON, e.g. '{\"k\": 5}'")
    parser.add_argument("--fail", choices=sorted(FAIL_MODES), help="inject a fault: " +
                        "; ".join(f"{k}: {v}" for k, v in FAIL_MODES.items()))
    parser.add_argument("--concurrent", type=int, default=1, metavar="N",
                        help="start N executions at once on the same stack (an upload while the schedule fires)")
    parser.add_argument("--json", action="store_true", help="print the final result as one JSON object on stdout")
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output", help="folder for the sample data")
    return parser



def run_concurrently(aws: OfflineAWS, execution_input: dict, name: str, count: int, stream: Any) -> list[ExecutionResult]:
    """Start `count` executions at once, wait for all, and say how each ended and what the endpoint serves."""
    arns = [aws.start(execution_input, f"{name}-{i}") for i in range(1, count + 1)]
    print(f"Started {count} executions at once: " + ", ".join(f"{name}-{i}" for i in range(1, count + 1)), file=stream)
    results = [aws.wait(arn) for arn in arns]
    for result in results:
        ended = "deployed " + result.output["endpointConfig"] if result.status == "SUCCEEDED" else f"{result.error}: {result.cause}"
        print(f"  {result.name}: {result.status} in {result.seconds:.1f} s, {ended}", file=stream)
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)
    print(f"Endpoint {aws.endpoint_name}: {endpoint['EndpointStatus']} on {endpoint['EndpointConfigName']}", file=stream)
    return results


def compare_with_scikit_learn(aws: OfflineAWS, result: ExecutionResult, stream: Any) -> None:
    """Fit scikit-learn's KMeans(k, n_init=10) on the run's own train channel and score its test channel."""
    try:
        import numpy as np
        from sklearn.cluster import KMeans
    except ImportError:
        return
    s3 = aws.client("s3")

    def channel(uri: str) -> np.ndarray:
        bucket, prefix = uri[5:].split("/", 1)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        text = "".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys)
        return np.loadtxt(text.splitlines(), delimiter=",", ndmin=2)

    dataset, best = result.output["dataset"], result.output["bestTrainingJob"]
    train, test = channel(dataset["trainUri"]), channel(dataset["testUri"])
    k = int(best["hyperparameters"]["k"])
    centers = KMeans(n_clusters=k, n_init=10, random_state=0).fit(train).cluster_centers_
    msd = float(np.mean(np.min(((test[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)))
    print(f"Reference: scikit-learn KMeans(k={k}, n_init=10) on the same split scores test:msd {msd:,.4f}; "
          f"the tuned model's is {best['testMsd'] / msd:.1%} of that", file=stream)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stream = sys.stderr if args.json else sys.stdout
    try:
        overrides = json.loads(args.input)
    except json.JSONDecodeError as exc:
        print(f"--input is not JSON: {exc}", file=sys.stderr)
        return 2
    anomaly_lines = None
    if args.data:
        csv_path = args.data
        if not csv_path.is_file():
            print(f"--data {csv_path}: no such file", file=sys.stderr)
            return 2
    else:
        sample = generate(args.output, rows=args.rows)
        csv_path, anomaly_lines = sample.csv_path, sample.anomaly_lines
        print(f"Sample data: {sample.rows:,} transactions in {csv_path} "
              f"({len(anomaly_lines)} injected anomalies, listed in {sample.anomalies_path.name})", file=stream)

    name = args.name or time.strftime("demo-%Y%m%d-%H%M%S")
    key = f"incoming/{csv_path.name}"
    execution_input = {"dataKey": key, "pollSeconds": 1, **overrides}
    started = time.monotonic()
    with OfflineAWS(faults=faults_for(None if args.fail == "update" else args.fail)) as aws:
        print(f"Offline stack {aws.stack_name}: bucket {aws.bucket}, endpoint {aws.endpoint_name}", file=stream)
        aws.upload(csv_path, key)
        if args.fail == "update":
            print(f"\nFirst run {name}-initial deploys a model:", file=stream)
            first = aws.run(execution_input, f"{name}-initial", on_state=Progress(stream))
            summary(first, stream)
            aws.standin.faults.endpoint_update_fails = "The primary container for production variant AllTraffic did not pass the ping health check (injected)"
            print(f"\nSecond run {name} updates the endpoint, and the update fails:", file=stream)
        print(f"Execution input: {json.dumps(execution_input)}", file=stream)
        if args.concurrent > 1:
            others = run_concurrently(aws, execution_input, name, args.concurrent, stream)
            result = others[-1]
        else:
            result = aws.run(execution_input, name, on_state=Progress(stream))
            others = [result]
        summary(result, stream)
        try:
            described = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)
            endpoint = {"name": aws.endpoint_name, "status": described["EndpointStatus"],
                        "endpointConfig": described["EndpointConfigName"]}
        except aws.client("sagemaker").exceptions.ClientError:
            endpoint = {"name": aws.endpoint_name, "status": None, "endpointConfig": None}
        config = next(iter(result.state_outputs("Resolve run configuration")), None)
        resources = aws.sagemaker_resources(config["names"]) if config else {}
        if result.status == "SUCCEEDED":
            compare_with_scikit_learn(aws, result, stream)
        datasets = result.state_outputs("Prepare training data")
        if datasets and (result.status == "SUCCEEDED" or args.fail == "update"):
            score_examples(aws, csv_path, datasets[0]["featureColumns"], stream, anomaly_lines)
    print(f"\nTotal {time.monotonic() - started:.1f} s", file=stream)
    if args.json:
        print(json.dumps({"status": result.status, "error": result.error, "cause": result.cause,
                          "execution": result.name, "resources": resources, "output": result.output,
                          "endpoint": endpoint,
                          "executions": [{"name": r.name, "status": r.status, "error": r.error, "cause": r.cause,
                                          "endpointConfig": (r.output or {}).get("endpointConfig")} for r in others]},
                         indent=2))
    return 0 if all(r.status == "SUCCEEDED" for r in others) else 1


if __name__ == "__main__":
    sys.exit(main())
