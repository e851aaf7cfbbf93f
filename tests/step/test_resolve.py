"""Step 1: every way a run starts becomes one validated RunConfig with SageMaker-valid names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from kmeans_pipeline.aws.names import run_id
from kmeans_pipeline.errors import InvalidInputError, SourceObjectError
from kmeans_pipeline.steps.resolve_run import resolve_run
from testkit.aws import REGION, put_csv

EVENTS = Path(__file__).resolve().parents[2] / "events"
TUNING_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
NAME_63 = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]*$")  # botocore's ([\p{L}\p{Z}\p{N}_.:/=+\-@]*) for str.isalnum letters
START = "2026-11-23T10:00:00.000Z"


def s3():
    return boto3.client("s3", region_name=REGION)


def test_console_input_uses_the_stack_defaults_for_what_it_omits(settings):
    config = resolve_run({"dataKey": "incoming/a.csv", "k": 5}, "run-1", START, settings, s3())
    assert config.trigger == "console"
    assert (config.source.bucket, config.source.key) == (settings.data_bucket, "incoming/a.csv")
    assert config.k == 5
    assert config.max_training_jobs == settings.max_training_jobs
    assert config.poll_seconds == 60
    assert config.names.endpoint == settings.endpoint_name
    assert config.dataset_prefix == f"datasets/{config.run_id}/"


def test_s3_upload_event_names_the_uploaded_object(settings):
    event = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/new.csv", "size": 10}},
    }
    config = resolve_run(event, "upload-1", START, settings, s3())
    assert config.trigger == "upload"
    assert config.source.key == "incoming/new.csv"
    assert config.k == settings.default_k


def test_upload_to_another_bucket_is_refused(settings):
    event = {"detail-type": "Object Created", "detail": {"bucket": {"name": "elsewhere"}, "object": {"key": "k"}}}
    with pytest.raises(InvalidInputError, match="elsewhere"):
        resolve_run(event, "x", START, settings, s3())


def test_schedule_trains_on_the_newest_upload(settings):
    put_csv(settings.data_bucket, "incoming/old.csv", "a\n1\n")
    put_csv(settings.data_bucket, "incoming/new.csv", "a\n1\n")
    put_csv(settings.data_bucket, "datasets/other.csv", "a\n1\n")
    event = {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    config = resolve_run(event, "sched-1", START, settings, s3())
    assert config.trigger == "schedule"
    assert config.source.key == "incoming/new.csv"


ALARM = {
    "version": "0",
    "detail-type": "CloudWatch Alarm State Change",
    "source": "aws.cloudwatch",
    "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:kmeans-dev-drift"],
    "detail": {
        "alarmName": "kmeans-dev-drift",
        "state": {"value": "ALARM", "reason": "Threshold Crossed"},
        "previousState": {"value": "OK"},
    },
}


def test_the_drift_alarm_retrains_on_the_newest_upload(settings):
    put_csv(settings.data_bucket, "incoming/old.csv", "a\n1\n")
    put_csv(settings.data_bucket, "incoming/new.csv", "a\n1\n")
    config = resolve_run(ALARM, "drift-1", START, settings, s3())
    assert config.trigger == "drift"
    assert config.source.key == "incoming/new.csv"


@pytest.mark.parametrize("change", [{"source": "aws.events"}, {"detail": {"alarmName": "x", "state": {"value": "OK"}}}])
def test_an_alarm_event_that_is_not_an_alarm_going_off_starts_nothing(settings, change):
    with pytest.raises(InvalidInputError, match="going into ALARM"):
        resolve_run({**ALARM, **change}, "drift-2", START, settings, s3())


def test_schedule_with_nothing_uploaded_says_what_to_do(settings):
    with pytest.raises(SourceObjectError, match="incoming/ is empty"):
        resolve_run({"detail-type": "Scheduled Event"}, "sched-2", START, settings, s3())


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ({"dataKey": "x", "colour": "blue"}, "colour"),
        ({"dataKey": "x", "k": "many"}, "k"),
        ({"dataKey": "x", "k": 1}, "k"),
        ({"dataKey": "x", "testFraction": 0.9}, "testFraction"),
        ({"dataKey": "x", "featureColumns": ["a", "a"]}, "more than once"),
        ({"dataKey": "x", "maxTuningPollRounds": 5000}, "25,000"),
        ({"dataKey": "x", "pollSeconds": 3600}, "timeout"),
    ],
)
def test_invalid_console_input_names_the_field(settings, bad, names):
    with pytest.raises(InvalidInputError, match=names):
        resolve_run(bad, "bad", START, settings, s3())


def test_input_that_is_not_an_object_is_refused(settings):
    with pytest.raises(InvalidInputError, match="JSON object"):
        resolve_run(["a"], "bad", START, settings, s3())


@hyp_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Step Functions refuses whitespace, < > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : / and control characters.
@given(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_()!'.@=+é", min_size=1, max_size=80
    )
)
def test_any_execution_name_gives_valid_unique_stable_names(settings, name):
    first = resolve_run({"dataKey": "k"}, name, START, settings, None)
    again = resolve_run({"dataKey": "k"}, name, START, settings, None)
    assert first.names == again.names  # a retried step makes the same names
    assert TUNING_NAME.match(first.names.tuning_job) and len(first.names.tuning_job) <= 32
    for other in (first.names.model, first.names.endpoint_config, first.names.endpoint):
        assert NAME_63.match(other)
    # Training job names are the tuning job name plus "-NNN-xxxxxxxx": still within 63.
    assert len(first.names.tuning_job) + 13 <= 63
    # The execution name is also a tag value on every SageMaker resource: within SageMaker's tag pattern.
    for tag in settings.tag_list(RunId=first.run_id, ExecutionName=name):
        assert TAG_VALUE.match(tag["Value"]) and len(tag["Value"]) <= 256


def test_the_same_name_started_again_later_gets_new_resource_names():
    assert run_id("nightly", "2026-01-01T00:00:00Z") != run_id("nightly", "2026-04-01T00:00:00Z")


@pytest.mark.parametrize("path", sorted(EVENTS.glob("execution-input*.json")), ids=lambda p: p.name)
def test_every_execution_input_event_resolves(settings, path):
    put_csv(settings.data_bucket, "incoming/transactions.csv", "tranCode,Amount\n1,2\n")
    event = json.loads(path.read_text())
    if event.get("detail-type") == "Object Created":
        event["detail"]["bucket"]["name"] = settings.data_bucket
    config = resolve_run(event, "events", START, settings, s3())
    assert config.source.key.startswith("incoming/")


def test_a_folder_marker_upload_is_not_data(settings):
    event = {
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": settings.data_bucket}, "object": {"key": "incoming/"}},
    }
    with pytest.raises(InvalidInputError, match="folder marker"):
        resolve_run(event, "folder", START, settings, s3())
