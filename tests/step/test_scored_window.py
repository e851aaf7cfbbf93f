"""What a drift check reads of a window (aws/scored.py): every object of a quiet window; of a busy one, a seeded
random sample bounded in objects listed, objects read and records held, and the check's output says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest

from kmeans_pipeline.aws import scored
from kmeans_pipeline.aws.scored import read_window, scored_key, scored_lines
from testkit.aws import REGION

ENDPOINT, MODEL, COLUMNS = "kmeans-dev", "kmeans-dev-abc123", ["tranCode", "Amount"]
START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)


def put_window(bucket: str, objects: int, records: int = 3) -> None:
    """``objects`` requests spread over the window, each of ``records`` records whose Amount is the object's number."""
    s3 = boto3.client("s3", region_name=REGION)
    for i in range(objects):
        when = START + (END - START) * (i + 0.5) / objects
        raw = np.array([[1.0, float(i)]] * records)
        body = scored_lines(COLUMNS, raw, np.zeros(records, int), np.ones(records), np.full(records, 0.5))
        s3.put_object(Bucket=bucket, Key=scored_key(ENDPOINT, MODEL, when), Body=body)
    # Outside the window, or another model's: never read.
    for when, model in ((START - timedelta(seconds=1), MODEL), (END, MODEL), (START, "kmeans-dev-other")):
        body = scored_lines(COLUMNS, np.array([[9.0, -1.0]]), np.zeros(1, int), np.ones(1), np.ones(1))
        s3.put_object(Bucket=bucket, Key=scored_key(ENDPOINT, model, when), Body=body)


def read(bucket: str):
    return read_window(boto3.client("s3", region_name=REGION), bucket, ENDPOINT, MODEL, COLUMNS, START, END)


def test_a_quiet_window_is_read_whole(bucket):
    put_window(bucket, 40)
    window = read(bucket)
    assert (window.objects, window.listed, window.minutes, window.minutes_listed) == (40, 40, 10, 10)
    assert window.sample is None and len(window.distance) == 120
    assert sorted(set(window.raw[:, 1].tolist())) == list(range(40))


def test_a_window_with_more_objects_than_the_cap_is_checked_on_a_seeded_sample_and_says_so(bucket, monkeypatch):
    monkeypatch.setattr(scored, "MAX_WINDOW_OBJECTS", 15)
    put_window(bucket, 60)
    window = read(bucket)
    assert (window.objects, window.listed, window.minutes_listed) == (15, 60, 10)
    assert window.sample == (
        "a seeded random sample: 15 of the 60 objects listed in 10 of the window's 10 minutes (45 records)"
    )
    picked = sorted(set(window.raw[:, 1].tolist()))
    assert len(picked) == 15 and all(0 <= v < 60 for v in picked)
    # Spread over the window, not its first objects; and the same sample when the same window is checked again.
    assert max(picked) >= 30 and min(picked) < 30
    assert sorted(set(read(bucket).raw[:, 1].tolist())) == picked


def test_a_window_with_more_objects_than_the_listing_budget_lists_a_seeded_sample_of_its_minutes(bucket, monkeypatch):
    monkeypatch.setattr(scored, "LIST_BUDGET", 25)
    monkeypatch.setattr(scored, "READERS", 2)
    put_window(bucket, 100)  # 10 objects a minute
    window = read(bucket)
    assert (window.listed, window.minutes_listed, window.objects) == (40, 4, 40)
    assert window.sample.startswith("a seeded random sample: 40 of the 40 objects listed in 4 of the window's 10")
    assert window.sample.endswith("until 25 objects were listed")
    minutes = sorted({int(v) // 10 for v in window.raw[:, 1]})
    assert len(minutes) == 4 and minutes != [0, 1, 2, 3]  # not the window's first minutes


def test_a_window_stops_reading_once_it_holds_the_records_it_may(bucket, monkeypatch):
    monkeypatch.setattr(scored, "MAX_WINDOW_RECORDS", 100)
    monkeypatch.setattr(scored, "_BATCH", 10)
    put_window(bucket, 60, records=4)
    window = read(bucket)
    assert (window.objects, len(window.distance)) == (30, 120)  # three batches of 10 objects: 120 >= 100 records
    assert window.sample.endswith("; objects read until 100 records were held")


def test_the_check_names_its_sample(bucket, monkeypatch):
    """Through the drift check: its output says the window was sampled, and how."""
    from kmeans_pipeline.steps import check_drift as step

    monkeypatch.setattr(scored, "MAX_WINDOW_OBJECTS", 15)
    put_window(bucket, 60)

    class Report:
        feature_columns = COLUMNS
        baseline = None

        class flagged:  # noqa: N801 (the report's field)
            per_cluster = 20

        evaluated_rows = 2000

    monkeypatch.setattr(step, "serving_model", lambda *args: {"modelName": MODEL})
    monkeypatch.setattr(step, "serving_report", lambda *args: Report)

    class CloudWatch:
        def put_metric_data(self, **_):
            pass

    settings = step.DriftSettings(powertools_metrics_namespace="kmeans-tests")
    event = {"windowStart": START.isoformat(), "windowEnd": END.isoformat()}
    check = step.check_drift(
        event, ENDPOINT, bucket, settings, None, boto3.client("s3", region_name=REGION), CloudWatch()
    )
    assert (check.objects, check.listed_objects, check.records) == (15, 60, 45)
    assert check.to_json()["sample"].startswith("a seeded random sample: 15 of the 60 objects")


@pytest.mark.parametrize("minutes", [60, 7 * 24 * 60])
def test_the_listing_asks_only_for_the_windows_minutes(minutes):
    start = START + timedelta(seconds=30)
    found = scored._minutes(start, start + timedelta(minutes=minutes))
    assert len(found) == minutes + 1 and found[0] == START  # the minute the window starts in, to the one it ends in
    assert scored.minute_prefix(ENDPOINT, MODEL, START) == f"scored/{ENDPOINT}/{MODEL}/2026/12/06/09/20261206T0900"
