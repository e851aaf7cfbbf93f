"""The data step's plan, maps and merge run by the real state machine offline (the Distributed Map seams of
offline/moto_patches.py): a file cut into many ranges, quoted line breaks across their boundaries read again, the
treated features written by the second map, a bad value named by its line, and the same dataset whatever the
number of children running at once."""

from __future__ import annotations

import pytest

from offline import moto_patches
from offline.runner import OfflineAWS

pytestmark = pytest.mark.slow  # whole executions with the real handlers

RUN = {"pollSeconds": 0, "maxTrainingJobs": 2, "k": 3, "gateTolerancePercent": 1000}


def noted(rows: int) -> bytes:
    """About 1 MiB per 16,000 rows; every fifth row's note holds a line break, and so does the note of every row
    in which a range of 1 MiB starts (so that the range's first line start is inside the note)."""
    lines = [b"id,note,tranCode,Amount\n"] + [
        f't{i},"a note of ""row {i:06d}"" that goes on and on",{i % 4 + 1},{(i * 37) % 1000}.{i % 100:02d}\n'.encode()
        for i in range(rows)
    ]
    at = len(lines[0])
    for number, line in enumerate(lines[1:], 1):
        gap = at + line.index(b" and on")
        if (number - 1) % 5 == 0 or (at // (1 << 20)) != (gap // (1 << 20)):
            lines[number] = line.replace(b" and on", b"\nand on", 1)
        at += len(line)
    return b"".join(lines)


@pytest.fixture(scope="module")
def stack():
    with OfflineAWS(parameters={"RangeKilobytes": "1024"}) as aws:
        yield aws


def channel(aws: OfflineAWS, uri: str) -> bytes:
    bucket, prefix = uri[5:].split("/", 1)
    s3 = aws.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
    return b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)


def data_step(aws: OfflineAWS, key: str, name: str, **overrides):
    result = aws.run({"dataKey": key, **RUN, **overrides}, name=name, timeout=300)
    visited = {event.state for event in result.states if event.kind == "entered"}
    return result, visited


def test_a_file_of_several_ranges_is_read_again_where_a_note_spans_a_boundary_and_trains(stack):
    body = noted(60_000)
    stack.upload(body, "incoming/noted.csv")
    result, visited = data_step(stack, "incoming/noted.csv", "noted-1", featureColumns=["tranCode", "Amount"])
    assert result.status == "SUCCEEDED", result.cause
    plan = result.state_outputs("Plan the data ranges")[0]
    assert plan["ranges"] == -(-len(body) // (1 << 20)) >= 3
    assert {
        "Split the ranges",
        "Merge the ranges",
        "Read ranges again",
        "Write the treated features",
        "Finish the dataset",
    } <= visited
    dataset = result.state_outputs("Finish the dataset")[0]
    assert dataset["trainRows"] + dataset["testRows"] == 60_000
    raw = channel(stack, dataset["trainUri"].replace("features/", "")) + channel(stack, dataset["rawTestUri"])
    assert sorted(raw.splitlines()) == sorted(
        f"{i % 4 + 1},{(i * 37) % 1000}.{i % 100:02d}".encode() for i in range(60_000)
    )
    merges = result.state_outputs("Merge the ranges")  # boundaries inside a note: read again, never accepted as read
    assert [m["next"] for m in merges] == ["again", "treat"] and 1 <= merges[0]["items"] < plan["ranges"]


def test_the_dataset_is_the_same_whatever_the_number_of_children_at_once(stack, monkeypatch):
    stack.upload(noted(20_000), "incoming/workers.csv")
    datasets = []
    for workers in (1, 8):
        monkeypatch.setattr(moto_patches, "MAP_RUN_WORKERS", workers)
        result, _ = data_step(
            stack, "incoming/workers.csv", f"workers-{workers}", featureColumns=["tranCode", "Amount"]
        )
        assert result.status == "SUCCEEDED", result.cause
        dataset = result.state_outputs("Finish the dataset")[0]
        datasets.append((channel(stack, dataset["trainUri"]), channel(stack, dataset["testUri"]), dataset["treatment"]))
    assert datasets[0] == datasets[1]


def test_a_bad_value_in_a_later_range_fails_the_run_naming_its_line(stack):
    body = noted(50_000).splitlines(keepends=True)
    bad = next(i for i in range(40_000, 50_000) if body[i].startswith(b"t") and b"on and on" in body[i])
    body[bad] = body[bad].rsplit(b",", 1)[0] + b",12x\n"
    stack.upload(b"".join(body), "incoming/bad.csv")
    result, _ = data_step(stack, "incoming/bad.csv", "bad-1", featureColumns=["tranCode", "Amount"])
    assert result.status == "FAILED"
    assert f"line {bad + 1}, column Amount: '12x' is not a number" in result.cause
    assert "Split the ranges" in result.cause or "Merge the ranges" in result.cause
