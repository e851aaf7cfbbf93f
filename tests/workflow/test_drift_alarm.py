"""Drift watched from live traffic, through the offline stack: what the scoring API scores is kept, a check compares a
window with the serving model's report and publishes DriftDetected, the alarm (evaluated as CloudWatch would) notifies
the topic and, with RetrainOnDrift, starts a retraining run. And every flagged answer says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from offline.__main__ import score_api
from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
RUN = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 2}
WINDOW = 1000


def csv_body(rows: np.ndarray, factor: float = 1.0) -> str:
    return "tranCode,Amount\n" + "".join(f"{int(c)},{a * factor:.2f}\n" for c, a in rows)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("drift")
    sample = generate(directory / "train", rows=20_000, seed=7)
    live = generate(directory / "live", rows=22_000, seed=1001)
    rows = np.loadtxt(live.csv_path, delimiter=",", skiprows=1)
    injected = np.asarray(live.anomaly_lines) - 2
    with OfflineAWS(parameters={"RetrainOnDrift": "true", "DefaultPollSeconds": "0"}) as aws:
        aws.upload(sample.csv_path, KEY)
        result = aws.run(RUN, "drift-initial", timeout=300)
        assert result.status == "SUCCEEDED", result.cause
        yield aws, rows, injected


def scored_window(aws, rows: np.ndarray, factor: float = 1.0) -> tuple[dict, dict, list]:
    start = datetime.now(UTC)
    status, answer = score_api(aws, csv_body(rows, factor))
    assert status == 200, answer
    check = aws.check_drift((start, datetime.now(UTC)))
    return answer, check, aws.evaluate_alarms()


def test_twenty_unshifted_windows_raise_no_alarm_and_amounts_tripled_raise_it_within_one_check(stack):
    aws, rows, _ = stack
    checks = []
    for i in range(20):
        _, check, changes = scored_window(aws, rows[i * WINDOW : (i + 1) * WINDOW])
        checks.append(check)
        assert all(c.new == "OK" for c in changes), [(c.alarm, c.new, c.reason) for c in changes]
    assert [c["records"] for c in checks] == [WINDOW] * 20
    assert [c["drift"] for c in checks] == [False] * 20
    assert max(c["distancePsi"] for c in checks) < 0.1 and max(max(c["columnPsi"].values()) for c in checks) < 0.1
    assert {"DriftDetected", "DistancePSI", "FeaturePSI", "MaxFeaturePSI"} <= set(checks[0]["metrics"])
    executions_before = {e["name"] for e in aws.executions()}

    _, check, changes = scored_window(aws, rows[20 * WINDOW : 21 * WINDOW], factor=3.0)
    assert check["drift"] is True
    assert any(f.startswith("PSI of Amount") for f in check["findings"])
    assert not any(f.startswith("PSI of tranCode") for f in check["findings"])
    (change,) = [c for c in changes if c.alarm == aws.stack.outputs["DriftAlarmName"]]
    assert (change.old, change.new) == ("OK", "ALARM")
    # The topic hears of it.
    (note,) = [n for n in aws.notifications if n["message"]["NewStateValue"] == "ALARM"]
    assert note["topic"] == aws.stack.outputs["NotificationTopicArn"]
    assert note["message"]["Trigger"]["MetricName"] == "DriftDetected"
    # RetrainOnDrift: the alarm's event started a run, which retrains on the newest upload.
    (arn,) = change.executions
    assert {e["name"] for e in aws.executions()} - executions_before == {arn.rsplit(":", 1)[1]}
    result = aws.wait(arn, timeout=300)
    assert result.status == "SUCCEEDED", result.cause
    config = result.state_outputs("Resolve run configuration")[0]
    assert config["trigger"] == "drift" and config["source"]["key"] == KEY


def test_the_scored_records_are_kept_encrypted_for_the_serving_model(stack):
    aws, rows, _ = stack
    status, answer = score_api(aws, csv_body(rows[:5]))
    assert status == 200
    s3 = aws.client("s3")
    prefix = f"scored/{aws.endpoint_name}/{answer['model']}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=aws.bucket, Prefix=prefix)["Contents"]]
    head = s3.head_object(Bucket=aws.bucket, Key=keys[-1])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws.kms_key_arn
    lines = [
        json.loads(line) for line in s3.get_object(Bucket=aws.bucket, Key=sorted(keys)[-1])["Body"].read().splitlines()
    ]
    assert len(lines) == 5 and set(lines[0]) == {"values", "cluster", "distance", "score", "anomaly"}
    assert set(lines[0]["values"]) == {"tranCode", "Amount"}


def test_every_flagged_answer_names_a_feature_and_injected_anomalies_name_amount(stack):
    aws, rows, injected = stack
    picked = np.concatenate([injected[:100], np.arange(200)])
    status, answer = score_api(aws, csv_body(rows[picked]))
    assert status == 200
    results = answer["results"]
    flagged = [r for r in results if r["anomaly"]]
    assert flagged and all(r["reasons"] and r["explanation"] for r in flagged)
    assert all("explanation" not in r for r in results if not r["anomaly"])
    for r in results[:100]:  # the injected anomalies (an amount far from its line of business)
        assert r["anomaly"], r
        first = r["reasons"][0]
        assert (
            first["column"] == "Amount"
            and first["kind"] == "range"
            and not first["low"] <= first["value"] <= first["high"]
        )
