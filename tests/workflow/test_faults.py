"""Faults through the offline runner: a step that dies midway, an account quota, a tuning job stopped and an
endpoint deleted by hand. Each recovers or ends with a clear cause, and the endpoint that served before still serves."""

from __future__ import annotations

import itertools

import pytest

from offline.runner import OfflineAWS
from testkit.stacks import FAST, GOOD, reset_faults, without_endpoint

pytestmark = pytest.mark.slow
_names = itertools.count(1)


def unique(name: str) -> str:
    """Executions of one shared stack need their own names."""
    return f"{name}-{next(_names)}"


@pytest.fixture(scope="module")
def shared():
    with OfflineAWS() as aws:
        aws.upload(GOOD.encode(), "incoming/good.csv")
        yield aws


@pytest.fixture
def fresh(shared):
    """The module's stack (its endpoint may already serve), with no fault left over from an earlier test."""
    yield shared
    reset_faults(shared)


@pytest.fixture
def first_deploy(fresh):
    return without_endpoint(fresh)


def good_run(aws, name, **overrides):
    return aws.run({"dataKey": "incoming/good.csv", **FAST, **overrides}, name=unique(name), timeout=120)


@pytest.mark.parametrize("step", ["StartTuningFunction", "CreateModelFunction", "DeployEndpointFunction"])
@pytest.mark.parametrize("death", ["Runtime.ExitError", "Sandbox.Timedout"])
def test_a_step_that_dies_after_its_create_is_retried_and_finds_its_own_resource(fresh, step, death):
    first = good_run(fresh, "before")
    assert first.status == "SUCCEEDED"
    fresh.crash_after(step, death)
    result = good_run(fresh, "crashy", seed=2)
    assert result.status == "SUCCEEDED", result.cause
    assert [e["taskFailedEventDetails"]["error"] for e in result.history if e["type"] == "TaskFailed"] == [death]
    sm = fresh.client("sagemaker")
    run_id = result.output["runId"]
    assert len(sm.list_models(NameContains=run_id)["Models"]) == 1
    assert len(sm.list_endpoint_configs(NameContains=run_id)["EndpointConfigs"]) == 1
    endpoint = sm.describe_endpoint(EndpointName=fresh.endpoint_name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        result.output["endpointConfig"],
    )


@pytest.mark.parametrize("step", ["ResolveRunFunction", "CheckTuningFunction", "CheckEndpointFunction"])
def test_a_timed_out_short_step_is_retried(fresh, step):
    fresh.crash_after(step, "Sandbox.Timedout")
    result = good_run(fresh, "timeout")
    assert result.status == "SUCCEEDED", result.cause


@pytest.mark.parametrize(
    ("operation", "step"),
    [
        ("CreateHyperParameterTuningJob", "Start hyperparameter tuning"),
        ("CreateModel", "Create model and endpoint config"),
        ("CreateEndpointConfig", "Create model and endpoint config"),
    ],
)
def test_an_account_quota_ends_the_run_with_sagemakers_message_and_the_old_model_serving(fresh, operation, step):
    first = good_run(fresh, "before-quota")
    fresh.standin.faults.limit_creates, fresh.standin.faults.limit_only = 1, operation
    result = good_run(fresh, "quota", seed=3)
    assert result.status == "FAILED" and result.error == "SageMakerLimitExceededError"
    assert result.cause.startswith(f"{step} failed: ") and f"limit for {operation}" in result.cause
    assert (
        fresh.client("sagemaker").describe_endpoint(EndpointName=fresh.endpoint_name)["EndpointConfigName"]
        == first.output["endpointConfig"]
    )


def test_an_endpoint_quota_on_the_first_deploy_is_reported(first_deploy):
    first_deploy.standin.faults.limit_creates, first_deploy.standin.faults.limit_only = 1, "CreateEndpoint"
    result = good_run(first_deploy, "endpoint-quota")
    assert result.status == "FAILED" and result.error == "SageMakerLimitExceededError"
    assert result.cause.startswith("Deploy to endpoint failed: ") and "limit for CreateEndpoint" in result.cause


def test_a_tuning_job_stopped_by_someone_else_ends_the_run_clearly(fresh):
    fresh.standin.timing.training_job_min_seconds = 3
    arn = fresh.start({"dataKey": "incoming/good.csv", **FAST, "pollSeconds": 1}, unique("stopped-by-hand"))
    name = fresh.state_output(arn, "Start hyperparameter tuning")["tuningJobName"]
    fresh.client("sagemaker").stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    result = fresh.wait(arn)
    assert result.status == "FAILED" and result.error == "TuningJobStopped"
    assert f"Tuning job {name} was stopped before it chose a model" in result.cause


def test_an_endpoint_deleted_by_hand_while_tuning_is_created_again(fresh):
    first = good_run(fresh, "before-delete")
    fresh.standin.timing.training_job_min_seconds = 2
    arn = fresh.start({"dataKey": "incoming/good.csv", **FAST, "pollSeconds": 1}, unique("deleted-meanwhile"))
    fresh.client("sagemaker").delete_endpoint(EndpointName=fresh.endpoint_name)
    result = fresh.wait(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["deployment"] == "created"
    assert result.output["endpointConfig"] != first.output["endpointConfig"]
