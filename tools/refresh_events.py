"""Regenerate `events/` from a real offline run: each step's event is exactly what the state machine sent it.

    python tools/refresh_events.py

Bucket names become `EXAMPLE-BUCKET` (replace with your stack's DataBucketName before `sam local invoke`).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from offline.__main__ import score_api
from offline.runner import ROOT, OfflineAWS
from offline.sample_data import generate

EVENTS = ROOT / "events"
PLACEHOLDER = "EXAMPLE-BUCKET"
STEP_DIRS = {
    "ResolveRunFunction": "resolve_run",
    "PlanDataFunction": "plan_data",
    "SplitRangeFunction": "split_range",
    "MergeRangesFunction": "merge_ranges",
    "TreatRangeFunction": "treat_range",
    "FinishDatasetFunction": "finish_dataset",
    "StartTuningFunction": "start_tuning",
    "CheckTuningFunction": "check_tuning",
    "CreateModelFunction": "create_model",
    "DeployEndpointFunction": "deploy_endpoint",
    "CheckEndpointFunction": "check_endpoint",
    "CleanUpFunction": "clean_up",
    "EvaluateModelFunction": "evaluate_model",
    "VerifyEndpointFunction": "verify_endpoint",
    "RecordVersionFunction": "record_version",
    "DeployLeaseFunction": "deploy_lease",
}
BATCH_DIRS = {
    "PlanScoresFunction": "plan_scores",
    "ScoreRangeFunction": "score_range",
    "FinishScoresFunction": "finish_scores",
}
SCORE_BODY = "id,tranCode,Amount\nt-1,1,42.50\nt-2,4,2480.00\nt-3,1,9000.00\nt-4,2,twenty\n"
CONSOLE_INPUT = {"dataKey": "incoming/transactions.csv", "stratifyColumn": "tranCode", "maxTrainingJobs": 4}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, OfflineAWS() as aws:
        sample = generate(Path(tmp), rows=5000)
        aws.upload(sample.csv_path, "incoming/transactions.csv")
        result = aws.run({**CONSOLE_INPUT, "pollSeconds": 0}, name="example-run")
        if result.status != "SUCCEEDED":
            print(f"offline run failed: {result.error}: {result.cause}", file=sys.stderr)
            return 1
        bucket = aws.bucket
        for logical, directory in STEP_DIRS.items():
            event = aws.step_events[logical][0]
            if logical == "ResolveRunFunction":
                event = {**event, "input": CONSOLE_INPUT}
            if logical == "CheckTuningFunction":
                event = aws.step_events[logical][-1]
            if logical == "RecordVersionFunction":  # the registration; what later events add is null in it
                event = {
                    **dict.fromkeys(("version", "approval", "reason", "endpointConfigName", "replacedVersion")),
                    **event,
                }
            if "config" in event:  # the run polled without waiting; show the deployed default
                event = {**event, "config": {**event["config"], "pollSeconds": 60}}
            text = json.dumps(event, indent=2).replace(bucket, PLACEHOLDER)
            (EVENTS / f"{directory}.json").write_text(text + "\n")
        # The scoring API's event: what its function URL sends for a caller's POST (two ordinary records, a
        # $9,000 card purchase, and a record with a bad value).
        status, _ = score_api(aws, SCORE_BODY)
        if status != 200:
            print(f"the scoring API answered {status}", file=sys.stderr)
            return 1
        event = aws.step_events["ScoreRecordsFunction"][0]
        (EVENTS / "score_records.json").write_text(json.dumps(event, indent=2) + "\n")
        # Batch scoring, started by hand on a file under score/.
        aws.upload(SCORE_BODY.encode(), "score/transactions.csv")
        scored = aws.run(
            {"scoreKey": "score/transactions.csv"}, name="example-batch", state_machine="ScoringStateMachine"
        )
        if scored.status != "SUCCEEDED":
            print(f"offline batch failed: {scored.error}: {scored.cause}", file=sys.stderr)
            return 1
        for logical, directory in BATCH_DIRS.items():
            text = json.dumps(aws.step_events[logical][0], indent=2).replace(bucket, PLACEHOLDER)
            (EVENTS / f"{directory}.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
