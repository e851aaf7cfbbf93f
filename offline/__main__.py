"""`make demo`: run the deployed workflow offline, end to end, and show what it did.

    python -m offline [--data PATH] [--rows N] [--name NAME] [--input JSON] [--fail MODE] [--approve | --reject]
                      [--concurrent N] [--json] [--output DIR] [--verbose]

It shows the model's version in the model registry and its approval status, the scoring API's answers (why each
flagged record is flagged), a drift check on the demo's traffic (20 windows as generated, then one with every
Amount tripled, which raises the drift alarm), and ends with the run's evaluation report: a table, the injected
anomalies of the generated sample that the report's thresholds catch, and report.json and report.png in the output
folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.errors import DataValidationError, ModelArtifactError
from kmeans_pipeline.model.artifact import read_centroids
from offline import report_view
from offline.runner import (
    ROOT,
    ExecutionResult,
    OfflineAWS,
    StateEvent,
    execution_name_problem,
    start_execution_problem,
)
from offline.sample_data import MIN_ROWS, generate
from offline.standin import Faults

FAIL_MODES = {
    "tuning": "the tuning job fails",
    "training": "every training job fails",
    "endpoint": "endpoint creation fails",
    "update": "a first run deploys, then the second run's endpoint update fails and rolls back",
    "throttle": "the first 3 calls of every SageMaker Create are throttled (retried, the run succeeds)",
}
APPROVAL_ERRORS = {
    "ModelRejected": "REJECTED at approval: nothing was deployed, the endpoint was not touched.",
    "ApprovalTimedOut": "Nobody answered the approval request in time: nothing was deployed, the endpoint was not touched.",
}
POLL_STATES = {
    "Wait for tuning",
    "Has tuning finished?",
    "Wait for endpoint",
    "Is the endpoint in service?",
    "Wait for the other deployment",
    "Is the endpoint free?",
}


def faults_for(mode: str | None) -> Faults:
    if mode == "tuning":
        return Faults(
            tuning_job_fails="InternalServerError: We encountered an internal error. Please try again. (injected)"
        )
    if mode == "training":
        return Faults(training_jobs_fail="ClientError: Unable to parse the training data: injected failure")
    if mode == "endpoint":
        return Faults(
            endpoint_creation_fails="The primary container for production variant AllTraffic did not pass the ping health check (injected)"
        )
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
            line = (
                f"  tuning {event.output.get('status')}: {jobs.get('completed', 0)} of {event.output.get('budget')} "
                f"training jobs done ({jobs.get('inProgress', 0)} running, {jobs.get('failed', 0)} failed)"
                + (f", best test:msd so far {best:,.4f}" if best is not None else "")
            )
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


# The demo's stack cuts its input into ranges of 256 KiB (the smallest), so that its sample of under 1 MiB is read
# by several workers of the Distributed Map, as a large file is in AWS with the default of 256 MiB.
DEMO_PARAMETERS = {"RangeKilobytes": "256"}


def summary(result: ExecutionResult, stream: Any) -> None:
    print(f"\nExecution {result.name}: {result.status} in {result.seconds:.1f} s", file=stream)
    plan = next(iter(result.state_outputs("Plan the data ranges")), None)
    if isinstance(plan, dict) and "ranges" in plan:  # a plan that failed has no ranges
        merges = result.state_outputs("Merge the ranges")
        again = sum(m["items"] for m in merges if m.get("next") == "again")
        print(
            f"Data step: {plan['bytes']:,} bytes in {plan['ranges']} range(s) of {plan['rangeBytes'] >> 10:,} KiB, "
            f'read by the Distributed Map "Split the ranges"'
            + (f"; {again} read again from their first true row" if again else ""),
            file=stream,
        )
    print("Time per state (summed over visits):", file=stream)
    for state, seconds in result.state_seconds().items():
        print(f"  {state:<36} {seconds:7.2f} s", file=stream)
    if result.status != "SUCCEEDED":
        print(f"\nError: {result.error}\nCause: {result.cause}", file=stream)
        if result.error in APPROVAL_ERRORS:
            print(APPROVAL_ERRORS[result.error], file=stream)
        return
    out = result.output
    best = out["bestTrainingJob"]
    print(f"\nTuning job {out['tuningJob']}: {out['trainingJobs']['completed']} training jobs completed", file=stream)
    print(f"Best training job {best['trainingJobName']}: test:msd {best['testMsd']:,.4f}", file=stream)
    print(
        "  hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(best["hyperparameters"].items())), file=stream
    )
    if out.get("outcome") == "kept":
        gate = out.get("evaluation", {}).get("gate", {})
        print(
            f"KEPT: the new model was not deployed; {gate.get('servingModel') or 'the serving model'} keeps serving "
            f"endpoint {out['endpoint']}.\n  The quality gate: {gate.get('reason')}",
            file=stream,
        )
        return
    print(f"Model {out['model']}, endpoint config {out['endpointConfig']}", file=stream)
    print(
        f"Endpoint {out['endpoint']}: {out['deployment']}"
        + (f" (was {out['previousEndpointConfig']})" if out.get("previousEndpointConfig") else ""),
        file=stream,
    )


def _number(value: float) -> str:
    return format(value, ".15g")  # what the CSV said, without float noise: 45, 2500.5, 1e-07


def score_api(aws: OfflineAWS, body: str, content_type: str = "text/csv") -> tuple[int, dict]:
    """POST to the stack's scoring API (its function URL's event, through the Lambda the URL invokes)."""
    name = aws.stack.physical["ScoreRecordsFunction"]
    now = time.time()
    event = {  # a function URL's payload format 2.0, as AWS sends it for an IAM-signed POST
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": content_type, "host": f"offline.lambda-url.{aws.stack.region}.on.aws"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "offline",
            "domainName": f"offline.lambda-url.{aws.stack.region}.on.aws",
            "http": {
                "method": "POST",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "offline-demo",
            },
            "requestId": f"offline-{int(now * 1000)}",
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }
    answer = aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(answer["Payload"].read())
    if answer.get("FunctionError"):
        raise RuntimeError(f"the scoring API failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return payload["statusCode"], json.loads(payload["body"])


def score_examples(
    aws: OfflineAWS, X: np.ndarray, lines: np.ndarray, features: list[str], stream: Any, anomaly_lines: list[int] | None
) -> None:
    """Send a few records to the scoring API, as a caller would (raw values, CSV with a header), and show its
    answers. ``X`` and ``lines`` are the CSV's rows as the data step read them (``report_view.read_rows``)."""
    ordinary = list(range(min(3, len(X))))
    anomalous = np.flatnonzero(np.isin(lines, anomaly_lines or []))[:3].tolist()
    records = [",".join(_number(v) for v in X[row]) for row in ordinary + anomalous]
    if not records:
        return
    status, answer = score_api(aws, "\n".join([",".join(features), *records]) + "\n")
    print(f"\nThe scoring API answers ({','.join(features)}; score = distance / the overall threshold):", file=stream)
    if status != 200:
        print(f"  HTTP {status}: {answer.get('error')}", file=stream)
        return
    for i, (record, result) in enumerate(zip(records, answer["results"])):
        label = "injected anomaly" if i >= len(ordinary) else "ordinary"
        row = (ordinary + anomalous)[i]
        if "error" in result:
            print(f"  line {int(lines[row]):<7} {record:<20} -> {result['error']}", file=stream)
            continue
        print(
            f"  line {int(lines[row]):<7} {record:<20} -> cluster {result['closest_cluster']}, "
            f"distance {result['distance_to_cluster']:,.3f}, score {result['score']:,.2f}"
            f"{', ANOMALY' if result['anomaly'] else ''}   ({label})",
            file=stream,
        )
        if result.get("explanation"):
            print(f"  {'':<7}      why: {result['explanation']}", file=stream)


def show_version(aws: OfflineAWS, result: ExecutionResult, stream: Any) -> dict | None:
    """The run's model as a version of the stack's model registry group: its status and why, as a reviewer reads it
    (aws sagemaker describe-model-package)."""
    registered = next(iter(result.state_outputs("Register the model version")), None)
    if not isinstance(registered, dict):
        return None
    described = aws.client("sagemaker").describe_model_package(ModelPackageName=registered["modelPackageArn"])
    meta = described.get("CustomerMetadataProperties") or {}
    print(
        f"\nModel registry: {aws.stack.outputs['ModelPackageGroupName']} version {described['ModelPackageVersion']} "
        f"is {described['ModelApprovalStatus']}: {described.get('ApprovalDescription')}\n"
        f"  evidence {described['ModelMetrics']['ModelQuality']['Statistics']['S3Uri']} "
        f"({described['ModelMetrics']['ModelQuality']['Statistics']['ContentDigest'][:19]}...), "
        f"k={meta.get('K')}, {meta.get('TrainRows')} training rows, treatment {meta.get('Treatment')}",
        file=stream,
    )
    return {
        "modelPackageArn": described["ModelPackageArn"],
        "version": described["ModelPackageVersion"],
        "status": described["ModelApprovalStatus"],
        "approvalDescription": described.get("ApprovalDescription"),
    }


DRIFT_WINDOWS = 20
DRIFT_WINDOW_RECORDS = 1000
DRIFT_SHIFT = 3.0


def drift_windows(aws: OfflineAWS, output: Path, stream: Any) -> dict:
    """Fresh traffic from the sample's generator scored through the scoring API in windows of 1,000 records, each
    checked for drift as the stack's schedule would, the alarm evaluated after each: 20 windows as generated, then
    one with every Amount tripled."""
    live = generate(output / "live-traffic", rows=(DRIFT_WINDOWS + 1) * DRIFT_WINDOW_RECORDS, seed=1001)
    rows = np.loadtxt(live.csv_path, delimiter=",", skiprows=1, ndmin=2)
    print(
        f"\nDrift: {DRIFT_WINDOWS} windows of {DRIFT_WINDOW_RECORDS:,} fresh records through the scoring API, each "
        "checked against the report (PSI of distances and of each column, the flagged share), then one window with "
        f"every Amount x{DRIFT_SHIFT:g}:",
        file=stream,
    )
    checks, alarms = [], []
    for i in range(DRIFT_WINDOWS + 1):
        window = rows[i * DRIFT_WINDOW_RECORDS : (i + 1) * DRIFT_WINDOW_RECORDS].copy()
        if i == DRIFT_WINDOWS:
            window[:, 1] *= DRIFT_SHIFT
        body = "tranCode,Amount\n" + "".join(f"{int(c)},{a:.2f}\n" for c, a in window)
        start = datetime.now(UTC)
        status, answer = score_api(aws, body)
        if status != 200:
            raise RuntimeError(f"the scoring API answered {status}: {answer.get('error')}")
        check = aws.check_drift((start, datetime.now(UTC)))
        changes = [c for c in aws.evaluate_alarms() if c.alarm == aws.stack.outputs["DriftAlarmName"]]
        checks.append(check)
        alarms.append(changes[-1].new if changes else None)
    unshifted = checks[:DRIFT_WINDOWS]
    raised = sum(1 for a in alarms[:DRIFT_WINDOWS] if a == "ALARM")
    print(
        f"  as generated: drift in {sum(bool(c['drift']) for c in unshifted)} of {DRIFT_WINDOWS} windows, the alarm "
        f"raised {raised} times; largest PSI {max(c['distancePsi'] for c in unshifted):.3f} (distances), "
        + ", ".join(f"{max(c['columnPsi'][k] for c in unshifted):.3f} ({k})" for k in unshifted[0]["columnPsi"])
        + f"; flagged {min(c['flaggedShare'] for c in unshifted):.2%}-{max(c['flaggedShare'] for c in unshifted):.2%}"
        f" (the evaluation flagged {unshifted[0]['expectedFlaggedShare']:.2%})",
        file=stream,
    )
    shifted = checks[-1]
    print(f"  Amount x{DRIFT_SHIFT:g}: drift {shifted['drift']}: " + "; ".join(shifted["findings"]), file=stream)
    note = next((n for n in reversed(aws.notifications) if n["message"]["NewStateValue"] == "ALARM"), None)
    if note:
        retrain = aws.stack.parameters.get("RetrainOnDrift") == "true"
        print(
            f"  the drift alarm went {alarms[-1]} and notified the topic: {note['subject']}"
            + ("" if retrain else " (RetrainOnDrift is false: no retraining run started)"),
            file=stream,
        )
    return {
        "windows": DRIFT_WINDOWS,
        "unshiftedDrift": sum(bool(c["drift"]) for c in unshifted),
        "unshiftedAlarms": raised,
        "shiftedDrift": shifted["drift"],
        "alarm": alarms[-1],
        "findings": shifted["findings"],
    }


def sample_rows(text: str) -> int:
    """--rows: a whole number, at least the sample's minimum."""
    try:
        rows = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if rows < MIN_ROWS:
        raise argparse.ArgumentTypeError(f"{rows}: the sample needs at least {MIN_ROWS} rows")
    return rows


def execution_name(text: str) -> str:
    """--name: a name Step Functions accepts for an execution."""
    problem = execution_name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def execution_overrides(text: str) -> dict:
    """--input: a JSON object, in standard JSON (Step Functions refuses NaN and Infinity: InvalidExecutionInput)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not standard JSON, and Step Functions refuses it")

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"k\": 5}}', got {kind}: {text[:40]}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make demo ARGS=...", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="your own CSV (header row, numeric feature columns)")
    parser.add_argument(
        "--rows",
        type=sample_rows,
        default=100_000,
        help=f"rows of generated sample data (default 100000, at least {MIN_ROWS})",
    )
    parser.add_argument(
        "--name",
        type=execution_name,
        help='execution name: 1-80 characters, no whitespace, brackets, wildcards, " # %% \\ ^ | ~ ` $ & , ; : / '
        "or control characters (Step Functions' rule)",
    )
    parser.add_argument(
        "--input",
        type=execution_overrides,
        default={},
        help="execution input overrides, a JSON object, e.g. '{\"k\": 5}' (standard JSON: no NaN or Infinity)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the offline Step Functions interpreter's own log (its internal dump of each failed state)",
    )
    parser.add_argument(
        "--fail",
        choices=sorted(FAIL_MODES),
        help="inject a fault: " + "; ".join(f"{k}: {v}" for k, v in FAIL_MODES.items()),
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=1,
        metavar="N",
        help="start N executions at once on the same stack (an upload while the schedule fires)",
    )
    approval = parser.add_mutually_exclusive_group()
    approval.add_argument(
        "--approve",
        dest="approve",
        action="store_const",
        const=True,
        default=None,
        help='the run asks for approval ("approval": true) and the offline runner approves; '
        'an input with "approval": true is approved without it',
    )
    approval.add_argument(
        "--reject",
        dest="approve",
        action="store_const",
        const=False,
        help="the run asks for approval and the offline runner rejects it: the run fails with "
        "ModelRejected, nothing is deployed",
    )
    parser.add_argument("--json", action="store_true", help="print the final result as one JSON object on stdout")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "demo-output",
        help="folder for the sample data and the report (report.json, report.png)",
    )
    return parser


def ending(result: ExecutionResult) -> str:
    if result.status != "SUCCEEDED":
        return f"{result.error}: {result.cause}"
    if result.output.get("outcome") == "kept":
        return "kept the serving model (" + result.output["evaluation"]["gate"]["reason"] + ")"
    if result.output.get("outcome") == "superseded":
        return "superseded (" + str(result.output.get("reason")) + ")"
    return "deployed " + result.output["endpointConfig"]


def run_concurrently(
    aws: OfflineAWS, execution_input: dict, name: str, count: int, stream: Any, approve: bool | None = None
) -> list[ExecutionResult]:
    """Start `count` executions at once, wait for all, and say how each ended and what the endpoint serves."""
    arns = [aws.start(execution_input, f"{name}-{i}") for i in range(1, count + 1)]
    print(f"Started {count} executions at once: " + ", ".join(f"{name}-{i}" for i in range(1, count + 1)), file=stream)
    results = [aws.wait(arn, approve=approve) for arn in arns]
    for result in results:
        ended = ending(result)
        print(f"  {result.name}: {result.status} in {result.seconds:.1f} s, {ended}", file=stream)
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)
    print(
        f"Endpoint {aws.endpoint_name}: {endpoint['EndpointStatus']} on {endpoint['EndpointConfigName']}", file=stream
    )
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
        bucket, prefix = split_s3_uri(uri, prefix=True)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        text = "".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys)
        return np.loadtxt(text.splitlines(), delimiter=",", ndmin=2)

    dataset, best = result.output["dataset"], result.output["bestTrainingJob"]
    train, test = channel(dataset["trainUri"]), channel(dataset["testUri"])
    k = int(best["hyperparameters"]["k"])
    centers = KMeans(n_clusters=k, n_init=10, random_state=0).fit(train).cluster_centers_
    msd = float(np.mean(np.min(((test[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)))
    ratio = f"{best['testMsd'] / msd:.1%} of that" if msd > 0 else f"{best['testMsd']:,.4f}"
    print(
        f"Reference: scikit-learn KMeans(k={k}, n_init=10) on the same split scores test:msd {msd:,.4f}; "
        f"the tuned model's is {ratio}",
        file=stream,
    )


def fetch_report(aws: OfflineAWS, result: ExecutionResult, stream: Any) -> tuple[dict, Any, str] | None:
    """(the run's evaluation report, its model's centroids or None when the artifact cannot be read, the report's
    URI), or None when the run did not get as far as the evaluation. A run rejected at approval has its evaluation in
    the history only."""
    evaluation = (result.output or {}).get("evaluation") or next(iter(result.state_outputs("Evaluate model")), None)
    if not isinstance(evaluation, dict) or not evaluation.get("reportUri"):
        return None
    s3 = aws.client("s3")
    bucket, key = split_s3_uri(evaluation["reportUri"])
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    try:
        centroids = read_centroids(report["modelArtifact"], s3=s3)
    except ModelArtifactError as exc:
        print(f"The model artifact cannot be read ({exc}); scoring with the report's centroids", file=stream)
        centroids = None
    return report, centroids, evaluation["reportUri"]


def outcome_line(result: ExecutionResult, approved: bool | None) -> str:
    out = result.output or {}
    if result.status == "SUCCEEDED" and out.get("outcome") == "kept":
        return (
            f"Outcome: KEPT. The quality gate kept {out['evaluation']['gate'].get('servingModel') or 'the serving model'} "
            f"on endpoint {out['endpoint']}; the new model was not deployed."
        )
    if result.status == "SUCCEEDED" and out.get("outcome") == "superseded":
        return (
            f"Outcome: SUPERSEDED. Another execution's deployment took endpoint {out['endpoint']} while this run "
            f"deployed {out.get('model')}: {out.get('reason')}"
        )
    if result.status == "SUCCEEDED":
        return f"Outcome: DEPLOYED {out.get('model')} to endpoint {out.get('endpoint')} ({out.get('deployment')})" + (
            ", approved by the offline runner" if approved else ""
        )
    if result.error in APPROVAL_ERRORS:
        return f"Outcome: {APPROVAL_ERRORS[result.error]}"
    return f"Outcome: {result.status} ({result.error})."


def _percent(value: float) -> str:
    return "   n/a" if value != value else f"{value:6.1%}"


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN (undefined) is null in the JSON


def show_report(
    report: dict,
    centroids: Any,
    uri: str,
    csv_path: Path,
    anomaly_lines: list[int] | None,
    output: Path,
    stream: Any,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Print the report's table and how the thresholds do on the whole data; save report.json and report.png.
    ``rows``: (X, line numbers) of the CSV as ``report_view.read_rows`` gives them, when already read."""
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    shown: dict[str, Any] = {
        "uri": uri,
        "json": str(json_path),
        "picture": None,
        "decision": (report.get("gate") or {}).get("decision"),
    }
    print(f"\n== Evaluation report ({uri}) ==\n", file=stream)
    print(report_view.report_table(report), file=stream)
    try:
        X, lines = rows if rows is not None else report_view.read_rows(csv_path, report["featureColumns"])
        closest, distance, flagged = report_view.anomaly_scores(csv_path, report, centroids, X=X)
    except (ValueError, OSError, DataValidationError) as exc:
        print(f"\nCould not score {csv_path} with the model: {exc}", file=stream)
        return shown
    overall = report_view.flagged_overall(report, closest, distance)
    per_cluster = any(t is not None for t in report["thresholds"]["perCluster"])
    own = f"{int(flagged.sum()):,} ({flagged.mean():.2%}) beyond their cluster's threshold, " if per_cluster else ""
    print(
        f"\nAll {len(X):,} records of {csv_path.name} scored with the model: {own}{int(overall.sum()):,} "
        f"({overall.mean():.2%}) beyond the overall threshold {report_view.fmt(report['thresholds']['overall'])}",
        file=stream,
    )
    shown["records"] = {
        "scored": int(len(X)),
        "flaggedPerCluster": int(flagged.sum()),
        "flaggedOverall": int(overall.sum()),
    }
    anomalies = None
    if anomaly_lines is not None:
        anomalies = np.isin(lines, anomaly_lines)
        shown["injectedAnomalies"] = {"count": len(anomaly_lines)}
        print(f"The {len(anomaly_lines)} injected anomalies:", file=stream)
        scores = report_view.scores(report, closest, distance)
        ap = {
            "distance": _finite(report_view.average_precision(distance, anomalies)),
            "score": _finite(report_view.average_precision(scores, anomalies)),
        }
        shown["injectedAnomalies"]["averagePrecision"] = ap
        print(
            f"  average precision: {_percent(ap['distance'] if ap['distance'] is not None else math.nan).strip()} "
            f"ranked by distance, {_percent(ap['score'] if ap['score'] is not None else math.nan).strip()} "
            "ranked by score",
            file=stream,
        )
        for rule, mask in (("perCluster", flagged), ("overall", overall))[0 if per_cluster else 1 :]:
            recall, precision = report_view.recall_precision(mask, anomaly_lines)
            caught = int((mask & anomalies).sum())
            label = "at their cluster's thresholds:" if rule == "perCluster" else "at the overall threshold:"
            print(
                f"  {label:<31}recall {_percent(recall)} ({caught} of {len(anomaly_lines)} caught), "
                f"precision {_percent(precision)} ({caught} of {int(mask.sum()):,} flagged)",
                file=stream,
            )
            shown["injectedAnomalies"][rule] = {
                "recall": _finite(recall),
                "precision": _finite(precision),
                "caught": caught,
                "flagged": int(mask.sum()),
            }
    try:
        picture = report_view.save_picture(
            output / "report.png", report, X, closest, distance, flagged, anomalies=anomalies
        )
        shown["picture"] = str(picture)
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no picture", file=stream)
    return shown


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def quiet_interpreter(verbose: bool) -> None:
    """moto's Step Functions interpreter logs an internal dump of every failed state (``Exception=...``) at ERROR;
    unconfigured, Python prints it on stderr. The demo says what failed itself; --verbose shows the dump."""
    interpreter = logging.getLogger("moto.stepfunctions.parser")
    for handler in [h for h in interpreter.handlers if h.get_name() == "offline-demo"]:
        interpreter.removeHandler(handler)
    if not verbose:
        interpreter.setLevel(logging.CRITICAL)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("offline-demo")
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    interpreter.addHandler(handler)
    interpreter.setLevel(logging.WARNING)


def sample_data(args: argparse.Namespace, stream: Any) -> tuple[Path, list[int] | None] | None:
    """The CSV to run on (--data, or a generated sample) and the sample's injected anomalies; None if --data names
    no file."""
    if args.data:
        if not args.data.is_file():
            print(f"--data {args.data}: no such file", file=sys.stderr)
            return None
        return args.data, None
    sample = generate(args.output, rows=args.rows)
    print(
        f"Sample data: {sample.rows:,} transactions in {sample.csv_path} "
        f"({len(sample.anomaly_lines)} injected anomalies, listed in {sample.anomalies_path.name})",
        file=stream,
    )
    return sample.csv_path, sample.anomaly_lines


def execution_names(args: argparse.Namespace, name: str) -> list[str]:
    """Every execution name the demo will start, so that each is checked before anything runs."""
    if args.concurrent > 1:
        return [f"{name}-{i}" for i in range(1, args.concurrent + 1)]
    return [f"{name}-initial", name] if args.fail == "update" else [name]


def approval_input(args: argparse.Namespace, execution_input: dict, stream: Any) -> bool:
    """How approval requests are answered (unanswered, a run would wait for its approval timeout): as the user
    says, else approved. --approve / --reject ask for approval unless the input says otherwise."""
    if args.approve is not None:
        option = "--approve" if args.approve else "--reject"
        if execution_input.setdefault("approval", True) is not True:
            print(
                f'{option}: the input sets "approval": {json.dumps(execution_input["approval"])}, so the run does not '
                "ask for approval",
                file=stream,
            )
        return args.approve
    if execution_input.get("approval") is True:
        print("The input asks for approval: the offline runner approves (--reject to reject)", file=stream)
    return True


def run_executions(
    aws: OfflineAWS, args: argparse.Namespace, execution_input: dict, name: str, approve: bool, stream: Any
) -> list[ExecutionResult]:
    """Run the demo's executions (a first deploying run for --fail update; N at once for --concurrent N); the
    last result is the one the demo shows."""
    if args.fail == "update":
        print(f"\nFirst run {name}-initial deploys a model:", file=stream)
        first = aws.run(execution_input, f"{name}-initial", on_state=Progress(stream), approve=approve)
        summary(first, stream)
        aws.standin.faults.endpoint_update_fails = (
            "The primary container for production variant AllTraffic did not pass the ping health check (injected)"
        )
        # The second model must pass the quality gate to reach the update whatever its score.
        execution_input = {"gateTolerancePercent": 1000, **execution_input}
        print(f"\nSecond run {name} updates the endpoint, and the update fails:", file=stream)
    print(f"Execution input: {json.dumps(execution_input)}", file=stream)
    if args.concurrent > 1:
        return run_concurrently(aws, execution_input, name, args.concurrent, stream, approve=approve)
    return [aws.run(execution_input, name, on_state=Progress(stream), approve=approve)]


def endpoint_state(aws: OfflineAWS) -> dict:
    try:
        described = aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)
    except aws.client("sagemaker").exceptions.ClientError:
        return {"name": aws.endpoint_name, "status": None, "endpointConfig": None}
    return {
        "name": aws.endpoint_name,
        "status": described["EndpointStatus"],
        "endpointConfig": described["EndpointConfigName"],
    }


@dataclass
class Shown:
    """What the demo found out after the run, for the closing lines and --json."""

    approve: bool
    asked: bool = False
    endpoint: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    fetched: tuple[dict, Any, str] | None = None
    rows: tuple[np.ndarray, np.ndarray] | None = None
    features: list[str] | None = None
    report: dict | None = None
    demo_error: str | None = None
    lease: dict | None = None  # who holds the deploy lease once the runs are done (nobody, if all went well)
    version: dict | None = None
    drift: dict | None = None


def score_a_batch(aws: OfflineAWS, csv_path: Path, stream: Any) -> None:
    """The demo's file scored as a batch: uploaded under score/ and scored by the scoring state machine (started
    by hand, as `aws stepfunctions start-execution --input '{"scoreKey": ...}'` does), range by range."""
    key = f"score/{csv_path.name}"
    aws.upload(csv_path, key)
    started = time.monotonic()
    batch = aws.run({"scoreKey": key}, name=f"batch-{int(time.time())}", state_machine="ScoringStateMachine")
    took = time.monotonic() - started
    if batch.status != "SUCCEEDED":
        print(f"\nBatch scoring of {key}: {batch.status}: {batch.cause}", file=stream)
        return
    plan = batch.state_outputs("Plan the scoring ranges")[0]
    done = batch.output
    print(
        f"\nBatch scoring: {key} ({plan['source']['size']:,} bytes) in {plan['ranges']} range(s) by the scoring "
        f"state machine's Distributed Map, model {done['model']}, in {took:.1f} s: {done['records']:,} records, "
        f"{done['flagged']:,} flagged, {done['errors']:,} not scored",
        file=stream,
    )
    clusters = ", ".join(f"{c['cluster']}: {c['flagged']:,}/{c['records']:,}" for c in done["clusters"])
    print(f"  flagged/records per cluster scored against: {clusters}", file=stream)
    if done["referred"] or done["unseenLevels"]:
        print(
            f"  {done['referred']:,} closest to a small cluster, scored against the nearest other one; "
            f"{done['unseenLevels']:,} with a category level the model never saw",
            file=stream,
        )
    print(f"  results: {done['output']}part-*.csv; summary: {done['summary']} (announced on the topic)", file=stream)


def after_the_run(
    aws: OfflineAWS, args: argparse.Namespace, result: ExecutionResult, csv_path: Path, sample: Any, shown: Shown
) -> None:
    """What the run left behind (approval, endpoint, SageMaker resources), a few records sent to the scoring API,
    and the report, fetched while the offline stack is up."""
    stream, anomaly_lines = sample
    shown.asked = bool(aws.approval_requests(result.arn))
    if shown.asked:
        print(
            f"Approval: the run asked for it and the offline runner {'approved' if shown.approve else 'rejected'} "
            f"({'--reject' if not shown.approve else '--approve' if args.approve else 'the default'})",
            file=stream,
        )
    shown.endpoint = endpoint_state(aws)
    shown.lease = aws.deploy_lease()
    config = next(iter(result.state_outputs("Resolve run configuration")), None)
    names = config.get("names") if isinstance(config, dict) else None  # a failed resolve has none
    shown.resources = aws.sagemaker_resources(names) if isinstance(names, dict) else {}
    try:
        if result.status == "SUCCEEDED":
            compare_with_scikit_learn(aws, result, stream)
        dataset = next(iter(result.state_outputs("Finish the dataset")), None)
        shown.features = dataset.get("featureColumns") if isinstance(dataset, dict) else None
        if shown.features and (result.status == "SUCCEEDED" or args.fail == "update"):
            shown.rows = report_view.read_rows(csv_path, shown.features)  # the CSV as the data step read it
            score_examples(aws, *shown.rows, shown.features, stream, anomaly_lines)
        if result.status == "SUCCEEDED" and shown.endpoint is not None:
            score_a_batch(aws, csv_path, stream)
        shown.version = show_version(aws, result, stream)
        if result.status == "SUCCEEDED" and anomaly_lines is not None and args.concurrent == 1 and not args.fail:
            shown.drift = drift_windows(aws, args.output, stream)
        shown.fetched = fetch_report(aws, result, stream)
    except Exception as exc:  # the run's own outcome is printed whatever the display after it meets
        shown.demo_error = demo_failed(exc, stream)


def show_the_report(args: argparse.Namespace, csv_path: Path, anomaly_lines: Any, shown: Shown, stream: Any) -> None:
    if not shown.fetched or shown.demo_error is not None:
        return
    try:
        same = shown.rows is not None and list(shown.fetched[0].get("featureColumns") or []) == list(
            shown.features or []
        )
        shown.report = show_report(
            *shown.fetched, csv_path, anomaly_lines, args.output, stream, rows=shown.rows if same else None
        )
    except Exception as exc:
        shown.demo_error = demo_failed(exc, stream)


def closing_lines(
    result: ExecutionResult, others: list[ExecutionResult], shown: Shown, json_out: bool, stream: Any
) -> None:
    print("\n" + outcome_line(result, shown.approve if shown.asked else None), file=stream)
    if shown.report:
        print(f"Report: {shown.report['json']}", file=stream)
        if shown.report["picture"]:
            print(f"Picture: {shown.report['picture']}", file=stream)
    if result.status != "SUCCEEDED":  # a failed run always ends with what failed and why
        print(f"Error: {result.error}\nCause: {result.cause}", file=stream)
    if not json_out:
        return
    executions = [
        {
            "name": r.name,
            "status": r.status,
            "error": r.error,
            "cause": r.cause,
            "endpointConfig": (r.output or {}).get("endpointConfig"),
            "outcome": (r.output or {}).get("outcome"),
            "runId": (r.output or {}).get("runId"),
            "newMsd": (r.output or {}).get("evaluation", {}).get("gate", {}).get("newMsd"),
        }
        for r in others
    ]
    print(
        json.dumps(
            {
                "status": result.status,
                "error": result.error,
                "cause": result.cause,
                "execution": result.name,
                "resources": shown.resources,
                "output": result.output,
                "endpoint": shown.endpoint,
                "report": shown.report,
                "modelVersion": shown.version,
                "drift": shown.drift,
                "demoError": shown.demo_error,
                "executions": executions,
                "deployLease": shown.lease,
            },
            indent=2,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # argparse checks every option, --input and --name included (exit 2)
    stream = sys.stderr if args.json else sys.stdout
    quiet_interpreter(args.verbose)
    name = args.name or time.strftime("demo-%Y%m%d-%H%M%S")
    for each in execution_names(args, name):
        problem = execution_name_problem(each)
        if problem:
            print(f"--name {name!r}: the execution name {each!r} would be refused: {problem}", file=sys.stderr)
            return 2
    source = sample_data(args, stream)
    if source is None:
        return 2
    csv_path, anomaly_lines = source
    key = f"incoming/{csv_path.name}"
    execution_input = {"dataKey": key, "pollSeconds": 1, **args.input}
    refused = start_execution_problem(execution_input, name)
    if refused is not None:  # what StartExecution would answer: nothing starts
        print(f"--input: StartExecution refuses it: {refused}", file=sys.stderr)
        return 2
    shown = Shown(approve=approval_input(args, execution_input, stream))
    started = time.monotonic()
    # Ranges of 1 MiB (the stack's default is 256): the demo's file is cut into several, read by the data step's
    # Distributed Map, as a large input is.
    with OfflineAWS(faults=faults_for(None if args.fail == "update" else args.fail), parameters=DEMO_PARAMETERS) as aws:
        print(f"Offline stack {aws.stack_name}: bucket {aws.bucket}, endpoint {aws.endpoint_name}", file=stream)
        aws.upload(csv_path, key)
        others = run_executions(aws, args, execution_input, name, shown.approve, stream)
        result = others[-1]
        summary(result, stream)
        after_the_run(aws, args, result, csv_path, (stream, anomaly_lines), shown)
    print(f"\nTotal {time.monotonic() - started:.1f} s", file=stream)
    show_the_report(args, csv_path, anomaly_lines, shown, stream)
    closing_lines(result, others, shown, args.json, stream)
    return 0 if shown.demo_error is None and all(r.status == "SUCCEEDED" for r in others) else 1


def demo_failed(exc: Exception, stream: Any) -> str:
    """Say what the demo could not show after the execution ended (its outcome is still printed)."""
    message = f"{type(exc).__name__}: {exc}"
    print(f"\nThe demo could not finish showing the run: {message}", file=stream)
    return message


if __name__ == "__main__":
    sys.exit(main())
