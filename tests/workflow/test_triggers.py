"""The stack's EventBridge rules, as template.yaml defines them, start the workflow: an upload under incoming/
(and only there) and the schedule (when enabled) each start a run that deploys."""

from __future__ import annotations

import time

import pytest

from offline.runner import OfflineAWS
from testkit.stacks import GOOD

# Runs started by a trigger carry no input of their own: the stack's defaults apply, so poll without waiting.
STACK = {"DefaultPollSeconds": "0", "MaxTrainingJobs": "2", "DefaultK": "3", "ScheduleEnabled": "true"}

pytestmark = pytest.mark.slow  # whole executions with the real handlers


def wait_for_executions(aws, count, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = aws.executions()
        if len(executions) >= count:
            return executions
        time.sleep(0.05)
    raise AssertionError(f"expected {count} executions, saw {len(aws.executions())}")


def test_an_upload_under_incoming_starts_a_run_and_other_prefixes_do_not():
    with OfflineAWS(parameters=STACK, event_triggers=True) as aws:
        aws.upload(GOOD.encode(), "datasets/not-a-trigger.csv")
        aws.upload(GOOD.encode(), "incoming/new-data.csv")
        [execution] = wait_for_executions(aws, 1)
        result = aws.wait(execution["executionArn"])
        assert result.status == "SUCCEEDED", result.cause
        assert result.output["trigger"] == "upload"
        assert result.output["dataset"]["source"]["key"] == "incoming/new-data.csv"
        assert result.output["dataset"]["source"]["versionId"]  # the version that was uploaded
        time.sleep(0.5)
        assert len(aws.executions()) == 1


def test_the_schedule_retrains_on_the_newest_upload():
    with OfflineAWS(parameters=STACK) as aws:  # uploads do not trigger here: only the schedule does
        aws.upload(GOOD.encode(), "incoming/older.csv")
        aws.upload(GOOD.encode(), "incoming/newest.csv")
        aws.fire_schedule()
        [execution] = wait_for_executions(aws, 1)
        result = aws.wait(execution["executionArn"])
        assert result.status == "SUCCEEDED", result.cause
        assert result.output["trigger"] == "schedule"
        assert result.output["dataset"]["source"]["key"] == "incoming/newest.csv"


def test_the_schedule_is_off_unless_enabled():
    with OfflineAWS(parameters={**STACK, "ScheduleEnabled": "false"}, event_triggers=True) as aws:
        aws.fire_schedule()
        time.sleep(0.3)
        assert aws.executions() == []
