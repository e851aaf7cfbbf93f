"""Batch scoring: a file uploaded under score/ (or named by hand) is scored range by range on the scoring state
machine's Distributed Map, with the serving model exactly as the scoring API scores each record (the cluster it is
scored against, warnings, explanations), into scores/<name>/<execution>/part-*.csv and a summary announced on the
topic; a record that cannot be scored gets an error naming the field, a quoted line break across a range boundary is
read right, and a broken file fails naming its line. Each execution owns its folder: two batches of one name never
mix their parts, and a model deployed during a batch fails it naming the range that saw it."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest

from offline.__main__ import score_api
from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "training/transactions.csv"  # not under incoming/: the stack's uploads start executions
# Wire transfers (tranCode 5) are a small cluster: their records are scored against the nearest large one.
FAST = {
    "dataKey": KEY,
    "pollSeconds": 0,
    "maxTrainingJobs": 2,
    "maxParallelTrainingJobs": 2,
    "k": 6,
    "smallClusters": "anomalous",
}
SCORING = "ScoringStateMachine"
WINDOW = 256 << 10  # the offline stack's ranges: RangeKilobytes 256


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A stack (ranges of 256 KiB, uploads start executions) whose endpoint serves a model trained on a sample."""
    sample = generate(tmp_path_factory.mktemp("batch"), rows=4000, seed=11)
    with OfflineAWS(parameters={"RangeKilobytes": "256"}, event_triggers=True) as aws:
        aws.upload(sample.csv_path, KEY)
        result = aws.run(FAST, "batch-model", timeout=240)
        assert result.status == "SUCCEEDED", result.cause
        yield aws


def batch(rows: int, breaks: bool = False, pad: int = 0) -> str:
    """Transactions with an id and a quoted note (with a comma; with a line break when ``breaks``), some of them
    records the model cannot score, some with a tranCode the model never saw (9); the first id ``pad`` characters
    longer."""
    out = ["id,tranCode,note,Amount\n"]
    for i in range(rows):
        if i == 1:
            out[-1] = out[-1].replace("t0,", "t0" + "0" * pad + ",", 1)
        amount = {7: "twenty", 11: "-12", 13: "inf"}.get(i % 997, f"{(i * 37) % 5000 + 0.5}")
        code = 9 if i % 1009 == 500 else i % 5 + 1
        gap = "\n" if breaks else " "
        out.append(f't{i},{code},"shop {i}, aisle{gap}{i % 7}",{amount}\n')
    out.append("t-ragged,3\n")
    return "".join(out)


def parts(aws: OfflineAWS, prefix: str) -> list[dict]:
    """The rows of the part files under a batch's folder (``scores/<name>/<execution>/``)."""
    s3 = aws.client("s3")
    listed = s3.list_objects_v2(Bucket=aws.bucket, Prefix=f"{prefix}part-").get("Contents", [])
    rows = []
    for key in sorted(o["Key"] for o in listed):
        head = s3.head_object(Bucket=aws.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws.kms_key_arn
        text = s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read().decode()
        rows += list(csv.DictReader(io.StringIO(text)))
    return rows


def scoring_run(aws: OfflineAWS, after: int, timeout: float = 240.0):
    """The scoring execution an upload started (the one after the first ``after``), followed to its end."""
    deadline = time.monotonic() + 30
    while len(aws.executions(SCORING)) <= after:
        assert time.monotonic() < deadline, "the upload started no scoring execution"
        time.sleep(0.1)
    return aws.wait(aws.executions(SCORING)[after]["executionArn"], timeout=timeout)


def test_an_upload_under_score_is_scored_range_by_range_as_the_api_scores_each_record(served):
    aws = served
    text = batch(30_000)
    assert len(text.encode()) > 3 * WINDOW  # several ranges
    before = len(aws.executions(SCORING))
    aws.upload(text.encode(), "score/daily/2026-12-06.csv")
    result = scoring_run(aws, before)
    assert result.status == "SUCCEEDED", result.cause
    plan = result.state_outputs("Plan the scoring ranges")[0]
    assert plan["name"] == "daily/2026-12-06" and plan["ranges"] >= 4
    execution = aws.executions(SCORING)[before]["name"]
    assert plan["prefix"] == f"scores/daily/2026-12-06/{execution}/"
    rows = parts(aws, plan["prefix"])
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(30_000)] + ["t-ragged"]
    assert rows[1]["note"] == "shop 1, aisle 1"  # the input's columns, as they were
    # Exactly the scoring API's answers for the same records (10,000 at a time, its limit).
    answers = []
    records = text.splitlines(keepends=True)
    for start in range(1, len(records), 10_000):
        status, answer = score_api(aws, records[0] + "".join(records[start : start + 10_000]))
        assert status == 200, answer
        answers += answer["results"]
    assert len(answers) == len(rows)
    for row, answer in zip(rows, answers):
        if "error" in answer:
            assert row["closest_cluster"] == "" and row["anomaly"] == ""
            assert answer["error"].endswith(row["error"]) and row["error"].startswith(("field ", "2 fields"))
            continue
        assert row["error"] == "" and int(row["closest_cluster"]) == answer["closest_cluster"]
        assert float(row["distance_to_cluster"]) == answer["distance_to_cluster"]
        assert float(row["score"]) == answer["score"] and (row["anomaly"] == "true") == answer["anomaly"]
        # A record closest to a small cluster: the cluster it is scored against and its distance, as the API says.
        assert row["reference_cluster"] == str(answer.get("reference_cluster", ""))
        assert (float(row["distance_to_reference"]) if row["distance_to_reference"] else None) == answer.get(
            "distance_to_reference"
        )
        # A level the model never saw, and why a flagged record is flagged: in the same words as the API's answer.
        assert row["warnings"] == "; ".join(answer.get("warnings", []))
        assert row["explanation"] == answer.get("explanation", "")
    assert rows[7]["error"] == "field Amount: 'twenty' is not a number"
    referred = [r for r in rows if r["reference_cluster"]]
    unseen = [r for r in rows if r["warnings"]]
    assert referred and all(r["reference_cluster"] != r["closest_cluster"] for r in referred)
    assert len(unseen) == 30 and "level 9 was not seen in training" in unseen[0]["warnings"]
    # The summary, in S3 beside the parts, and announced.
    summary = json.loads(
        aws.client("s3").get_object(Bucket=aws.bucket, Key=f"{plan['prefix']}summary.json")["Body"].read()
    )
    flagged = sum(r["anomaly"] == "true" for r in rows)
    assert (summary["records"], summary["flagged"], summary["errors"]) == (30_001, flagged, 3 * 31 + 1)
    assert (summary["referred"], summary["unseenLevels"]) == (len(referred), len(unseen))
    assert summary["model"] == plan["model"] and summary["parts"] == plan["ranges"]
    assert summary["output"] == f"s3://{aws.bucket}/{plan['prefix']}" and summary["execution"] == execution
    # Per cluster scored against: a referred record counts for its reference cluster, not for its small closest one.
    per_cluster = {c["cluster"]: (c["records"], c["flagged"]) for c in summary["clusters"]}
    for cluster, (records, flagged_here) in per_cluster.items():
        mine = [r for r in rows if (r["reference_cluster"] or r["closest_cluster"]) == str(cluster)]
        assert (len(mine), sum(r["anomaly"] == "true" for r in mine)) == (records, flagged_here)
    assert not {int(r["closest_cluster"]) for r in referred} & set(per_cluster)
    published = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "publish"
    ]
    message = published[0]["Message"] if len(published) == 1 else ""
    assert f"{flagged:,} flagged" in message and "Per cluster scored against" in message
    assert f"{len(referred):,} were closest to a small cluster" in message
    listed = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix=f"{plan['prefix']}work/")
    assert listed.get("KeyCount", 0) == 0  # the working files are gone


def test_a_batch_started_by_hand_reads_a_quoted_line_break_across_a_boundary_right(served):
    aws = served

    def inside(data: bytes) -> list[int]:
        """The range boundaries whose first line start is inside a note (a note's second line: 'digit",')."""
        return [b for b in range(WINDOW, len(data), WINDOW) if re.match(rb'\d",', data[data.index(b"\n", b - 1) + 1 :])]

    rows = 12_000
    pad = next(n for n in range(100) if inside(batch(rows, breaks=True, pad=n).encode()))
    data = batch(rows, breaks=True, pad=pad).encode()
    aws.upload(data, "batches/noted.csv")  # not under score/: this one is started by hand
    result = aws.run({"scoreKey": "batches/noted.csv"}, "batch-noted", timeout=240, state_machine=SCORING)
    assert result.status == "SUCCEEDED", result.cause
    visited = {event.state for event in result.states if event.kind == "entered"}
    assert "Score ranges again" in visited
    got = parts(aws, "scores/batches/noted/batch-noted/")
    assert [r["id"] for r in got] == ["t0" + "0" * pad] + [f"t{i}" for i in range(1, rows)] + ["t-ragged"]
    assert got[5]["note"] == "shop 5, aisle\n5"


def test_a_broken_file_fails_naming_its_line_and_the_failure_is_announced(served):
    aws = served
    text = batch(20_000).replace("t15000,1,", 't15000,1,"never closed', 1)
    aws.upload(text.encode(), "batches/broken.csv")
    result = aws.run({"scoreKey": "batches/broken.csv"}, "batch-broken", timeout=240, state_machine=SCORING)
    assert result.status == "FAILED"
    assert "line 15002" in result.cause and "batches/broken.csv" in result.cause, result.cause
    published = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in result.history
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "publish"
    ]
    assert len(published) == 1 and "Batch scoring failed" in published[0]["Subject"]


def test_two_batches_of_one_name_at_once_each_keep_their_own_parts_and_summary(served):
    """A file scored again while its earlier, larger batch still runs: each execution writes only its own folder, so
    neither overwrites the other's working files nor leaves the other's parts among its own."""
    aws = served
    large, small = batch(20_000), batch(3_000)
    aws.upload(large.encode(), "batches/again-large.csv")
    aws.upload(small.encode(), "batches/again-small.csv")
    s3 = aws.client("s3")

    def as_again(key: str) -> None:
        s3.copy_object(
            Bucket=aws.bucket,
            Key="batches/again.csv",
            CopySource={"Bucket": aws.bucket, "Key": key},
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=aws.kms_key_arn,
        )

    # Both under one name: the same key, started by hand at once (the large one's version, then the small one's).
    as_again("batches/again-large.csv")
    first = aws.start({"scoreKey": "batches/again.csv"}, "again-1", state_machine=SCORING)
    aws.state_output(first, "Plan the scoring ranges", timeout=60)
    as_again("batches/again-small.csv")
    second = aws.start({"scoreKey": "batches/again.csv"}, "again-2", state_machine=SCORING)
    results = [aws.wait(first, timeout=240), aws.wait(second, timeout=240)]
    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"], [r.cause for r in results]
    for name, text in (("again-1", large), ("again-2", small)):
        rows = parts(aws, f"scores/batches/again/{name}/")
        assert [r["id"] for r in rows] == [line.split(",", 1)[0] for line in text.splitlines()[1:]]
    summaries = [r.output for r in results]
    assert [s["output"] for s in summaries] == [f"s3://{aws.bucket}/scores/batches/again/again-{i}/" for i in (1, 2)]
    assert [s["records"] for s in summaries] == [20_001, 3_001]


def test_a_model_deployed_during_a_batch_fails_it_naming_the_range_that_saw_it(served, monkeypatch):
    """A worker that finds the endpoint serving another model than the batch's writes no part and says so in its
    result; the summary fails the batch with ModelChanged, naming the range and both configs (not the Map's generic
    failure threshold)."""
    aws = served
    function = aws.stack.physical["ScoreRangeFunction"]
    worker = aws._handlers[function]

    def after_a_deployment(event, context):  # range 1 finds the endpoint serving another config than the planned one
        if event["item"]["index"] == 1:
            event = {**event, "item": {**event["item"], "endpointConfig": "kmeans-offline-planned"}}
        return worker(event, context)

    monkeypatch.setitem(aws._handlers, function, after_a_deployment)
    aws.upload(batch(12_000).encode(), "batches/changed.csv")
    result = aws.run({"scoreKey": "batches/changed.csv"}, "batch-changed", timeout=240, state_machine=SCORING)
    assert result.status == "FAILED" and result.error == "ModelChanged", (result.error, result.cause)
    assert (
        result.cause.startswith("Summarize the scores failed: s3://")
        and "batches/changed.csv: range 1: " in result.cause
    )
    assert "not kmeans-offline-planned that the batch was planned with" in result.cause
    listed = aws.client("s3").list_objects_v2(Bucket=aws.bucket, Prefix="scores/batches/changed/batch-changed/")
    assert not [o["Key"] for o in listed.get("Contents", []) if "part-000001-" in o["Key"]]  # nothing of range 1
