"""Every Choice, Retry and Catch path of statemachine/pipeline.asl.json, in milliseconds: the real ASL runs in
moto's interpreter (with offline/moto_patches.py, as `make demo` runs it) and each Lambda Task is answered by a
stub keyed by its state name, built from the step's own output model. The handlers themselves are tested per step
and end to end (tests/workflow/test_offline_pipeline.py, test_evaluation.py, test_faults.py)."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kmeans_pipeline.schemas.dataset import Dataset, KChoice, SourceObject
from kmeans_pipeline.schemas.ranges import DataPlan, MergeResult
from kmeans_pipeline.schemas.results import (
    BestTrainingJob,
    CleanUpResult,
    DeployResult,
    EndpointStatus,
    EndpointVerification,
    Evaluation,
    GateDecision,
    LeaseStatus,
    ModelCreated,
    ModelVersion,
    TuningJobStarted,
    TuningStatus,
)
from kmeans_pipeline.schemas.run import ResourceNames, RunConfig, S3Location
from offline import moto_patches
from offline.runner import InjectedFault
from testkit.aws import ACCOUNT, REGION

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "pipeline.asl.json"
DEFINITION = json.loads(ASL.read_text())
LAMBDA_STATES = [
    name
    for name, state in DEFINITION["States"].items()
    if state.get("Resource", "").endswith(":states:::lambda:invoke")
]
Stub = Callable[[Any], Any]


def function_name(state: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", state).strip("-")


# -- what each step answers when all goes well (the steps' own output models) --------------------------------

NAMES = ResourceNames(
    tuning_job="kmeans-t-run", model="kmeans-m-run", endpoint_config="kmeans-ec-run", endpoint="kmeans-dev"
)
BEST = BestTrainingJob(
    training_job_name="kmeans-t-run-001-abc",
    hyperparameters={"k": "5"},
    test_msd=1.5,
    artifact_uri="s3://data/models/run/model.tar.gz",
)


def config(event: dict) -> dict:
    """Resolve run configuration: the stack's defaults, with the execution input's fields on top."""
    defaults = RunConfig(
        execution_name=event["execution"]["name"],
        run_id="run",
        trigger="console",
        source=S3Location(bucket="data", key="incoming/t.csv"),
        k=5,
        feature_columns=None,
        stratify_column=None,
        test_fraction=0.2,
        seed=42,
        max_training_jobs=2,
        max_parallel_training_jobs=2,
        poll_seconds=0,
        max_tuning_poll_rounds=5,
        max_endpoint_poll_rounds=4,
        names=NAMES,
        dataset_prefix="datasets/run",
        model_prefix="models/run",
        approval_timeout_seconds=3600,
    ).to_json()
    return {**defaults, **event["input"]}


DATASET = Dataset(
    train_uri="s3://data/datasets/run/train/",
    test_uri="s3://data/datasets/run/test/",
    train_rows=80,
    test_rows=20,
    skipped_blank_lines=0,
    feature_columns=["tranCode", "Amount"],
    feature_dim=2,
    content_type="text/csv",
    source=SourceObject(bucket="data", key="incoming/t.csv", etag="e", size=10),
    k_choice=KChoice(k=3, source="stack", reason="k=3: set by the stack's DefaultK parameter"),
).to_json()
STARTED = TuningJobStarted(tuning_job_name=NAMES.tuning_job, tuning_job_arn="arn:tuning", reused=False).to_json()


def tuning(outcome: str, status: str, **fields: Any) -> dict:
    return TuningStatus(outcome=outcome, status=status, training_jobs={"completed": 2}, budget=2, **fields).to_json()


COMPLETED = tuning("completed", "Completed", best=BEST)
RUNNING = tuning("running", "InProgress")


def evaluation(decision: str) -> dict:
    gate = GateDecision(
        decision=decision,
        reason=f"{decision}: because",
        new_msd=1.5,
        serving_msd=None if decision == "promote" else 1.0,
        tolerance_percent=5,
    )
    return Evaluation(
        report_uri="s3://data/reports/run/report.json",
        headline=f"{decision}: headline",
        gate=gate,
        evaluated_rows=20,
        flagged_share=0.01,
        overall_threshold=2.0,
    ).to_json()


CREATED = ModelCreated(
    model_name=NAMES.model, endpoint_config_name=NAMES.endpoint_config, model_data_url=BEST.artifact_uri
).to_json()


def deployment(action: str, status: str | None, previous: str | None = None) -> dict:
    return DeployResult(
        action=action, endpoint_name=NAMES.endpoint, endpoint_status=status, previous_endpoint_config_name=previous
    ).to_json()


def endpoint(outcome: str, status: str, **fields: Any) -> dict:
    return EndpointStatus(
        outcome=outcome, status=status, endpoint_config_name=NAMES.endpoint_config, **fields
    ).to_json()


def check(passed: bool, **fields: Any) -> dict:
    return EndpointVerification(passed=passed, checked_rows=20, **fields).to_json()


VERSION_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/kmeans-dev/1"


def version(event: dict) -> dict:
    """Record the model version: the status its event gives the run's version (steps/record_version.py)."""
    happened = event["event"]
    if happened == "registered":
        promoted = event["evaluation"]["gate"]["decision"] == "promote"
        status = "PendingManualApproval" if promoted and event["config"]["approval"] else "Approved"
        status = status if promoted else "Rejected"
    else:
        assert event["version"]["modelPackageArn"] == VERSION_ARN, event
        status = "Approved" if happened in {"approved", "deployed"} else "Rejected"
    return ModelVersion(model_package_arn=VERSION_ARN, version=1, status=status, description=happened).to_json()


RECORD_STATES = [
    "Register the model version",
    "Record the approval",
    "Record the rejection",
    "Record the timeout",
    "Record what happened to the model",
]


def lease(held: bool = True, compare_again: bool = False, **fields: Any) -> dict:
    if held:
        fields = {"serving_model": None, "tolerance_percent": 5.0, "reason": "no model still serves", **fields}
    else:
        fields = {
            "holder": "arn:other",
            "expires_at": "2026-12-06T21:00:00Z",
            "retry_in_seconds": 2,
            "reason": "execution arn:other holds it",
            **fields,
        }
    return LeaseStatus(held=held, compare_again=compare_again, **fields).to_json()


RELEASED = LeaseStatus(held=False, released=True, reason="released").to_json()

# The data step's plan names an empty item list: its Distributed Maps run no child here (tests/workflow/
# test_data_ranges.py runs them with the real handlers).
PLAN = DataPlan(
    items_uri="s3://data/items.json",
    items_bucket="data",
    items_key="items.json",
    ranges=1,
    parts=1,
    bytes=100,
    range_bytes=1 << 28,
    feature_columns=["tranCode", "Amount"],
).to_json()

HAPPY: dict[str, Any] = {
    **{state: version for state in RECORD_STATES},
    "Resolve run configuration": config,
    "Plan the data ranges": PLAN,
    "Merge the ranges": MergeResult(next="done", train_rows=80, test_rows=20).to_json(),
    "Finish the dataset": DATASET,
    "Start hyperparameter tuning": STARTED,
    "Check tuning job": COMPLETED,
    "Evaluate model": evaluation("promote"),
    "Create model and endpoint config": CREATED,
    "Deploy to endpoint": deployment("created", "Creating"),
    "Check endpoint": endpoint("inService", "InService"),
    "Verify endpoint": check(True),
    "Check the previous model": endpoint("inService", "InService"),
    "Clean up superseded models": CleanUpResult(kept=[NAMES.model], deleted=[]).to_json(),
    "Take the deploy lease": lease(),
    "Compare with the model serving now": evaluation("promote"),
    "Release the deploy lease": RELEASED,
}


def answers(*outcomes: Any) -> Stub:
    """A stub answering its calls with the outcomes in turn (the last one repeats): a value is returned, a
    function is called with the event, an exception is raised (as a Lambda function error of its error_type)."""
    queue = list(outcomes)

    def stub(event: Any) -> Any:
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome(event) if callable(outcome) else copy.deepcopy(outcome)

    stub.is_stub = True  # type: ignore[attr-defined]
    return stub


def fault(error_type: str, message: str = "injected") -> InjectedFault:
    return InjectedFault(error_type, message)


# -- the harness ---------------------------------------------------------------------------------------------


class Run:
    def __init__(self, described: dict, events: list[dict], calls: list[tuple[str, Any]]) -> None:
        self.status, self.error, self.cause = described["status"], described.get("error"), described.get("cause")
        self.output = json.loads(described["output"]) if described.get("output") else None
        self.events, self.calls = events, calls
        if self.status == "FAILED" and self.error is None:
            failed = next(e for e in reversed(events) if e["type"] == "ExecutionFailed")
            self.error = failed["executionFailedEventDetails"].get("error")
            self.cause = failed["executionFailedEventDetails"].get("cause")

    @property
    def path(self) -> list[str]:
        """The states entered, in order."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.events if e["type"].endswith("StateEntered")]

    def invoked(self, state: str) -> int:
        return sum(1 for name, _ in self.calls if name == state)

    def task_errors(self) -> list[str]:
        return [e["taskFailedEventDetails"]["error"] for e in self.events if e["type"] == "TaskFailed"]


class Workflow:
    """The pipeline's state machine in moto, its Lambda Tasks answered by `stubs` (state name -> stub)."""

    def __init__(self) -> None:
        self.stubs: dict[str, Stub] = {}
        self.calls: list[tuple[str, Any]] = []
        self.missing: list[str] = []
        self.sfn: Any = None
        self.machine = ""
        self.topic = ""
        self.count = 0
        self.states = {function_name(state): state for state in LAMBDA_STATES}

    def invoke(self, name: str, event: Any) -> Any:
        state = self.states[name]
        self.calls.append((state, event))
        if state not in self.stubs:
            self.missing.append(state)
            raise AssertionError(f"no stub for {state!r}")
        return self.stubs[state](event)

    def deploy(self) -> None:
        role = boto3.client("iam", region_name=REGION).create_role(RoleName="pipeline", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        self.topic = boto3.client("sns", region_name=REGION).create_topic(Name="notifications")["TopicArn"]
        definition = copy.deepcopy(DEFINITION)
        for state in LAMBDA_STATES:
            definition["States"][state]["Arguments"]["FunctionName"] = (
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(state)}"
            )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="items.json", Body=b"[]")
        text = (
            json.dumps(definition)
            .replace("${Partition}", "aws")
            .replace("${NotificationTopicArn}", self.topic)
            .replace("${DataBucket}", "data")
            .replace("${MaxDataWorkers}", "4")
        )
        # The Maps' children (no item runs one here) call functions of their own.
        text = re.sub(r"\$\{(\w+)FunctionArn\}", rf"arn:aws:lambda:{REGION}:{ACCOUNT}:function:\1", text)
        assert "${" not in text, "a substitution the harness does not fill"
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.machine = self.sfn.create_state_machine(name="pipeline", roleArn=role, definition=text)["stateMachineArn"]

    def run(
        self, execution_input: dict | None = None, answer: Callable[[Any, dict], None] | None = None, **stubs: Any
    ) -> Run:
        """One execution with the HAPPY answers, except those given (keyword: the state name with spaces as
        underscores and without "?"); `answer(sfn, event)` sees each history event while the run waits."""
        chosen = {**HAPPY, **{_state(key): value for key, value in stubs.items()}}
        self.stubs = {
            state: value if getattr(value, "is_stub", False) else answers(value) for state, value in chosen.items()
        }
        self.calls, self.missing = [], []
        self.count += 1
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine, name=f"branch-{self.count}", input=json.dumps(execution_input or {})
        )["executionArn"]
        deadline, seen = time.monotonic() + 30, 0
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            if answer:
                events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                for event in events[seen:]:
                    answer(self.sfn, event)
                seen = len(events)
            time.sleep(0.03)
        assert not self.missing, f"states without a stub: {self.missing}"
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return Run(described, events, list(self.calls))


def _state(key: str) -> str:
    for state in LAMBDA_STATES:
        if key_of(state) == key:
            return state
    raise KeyError(f"{key} names no Lambda Task of the state machine")


@pytest.fixture(scope="module")
def workflow():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        flow = Workflow()
        moto_patches.install(flow.invoke)
        try:
            flow.deploy()
            yield flow
        finally:
            moto_patches.uninstall()


def token_of(event: dict) -> str | None:
    details = event.get("taskScheduledEventDetails") or {}
    if event["type"] != "TaskScheduled" or "waitForTaskToken" not in details.get("resource", ""):
        return None
    return re.search(r"--task-token (\S+)", json.loads(details["parameters"])["Message"]).group(1)


def approve_with(output: Any) -> Callable[[Any, dict], None]:
    def answer(sfn: Any, event: dict) -> None:
        if token := token_of(event):
            sfn.send_task_success(taskToken=token, output=json.dumps(output))

    return answer


# A failure after registration, before or without the deploy lease: the version hears of it, then the run fails.
RECORDED_FAILURE = ["Record what happened to the model", "How does the run end?", "A step failed"]

DEPLOY_PATH = [
    "Take the deploy lease",
    "Is the deploy lease ours?",
    "Create model and endpoint config",
    "Deploy to endpoint",
    "Is the endpoint free?",
    "Wait for endpoint",
    "Check endpoint",
    "Is the endpoint in service?",
    "Verify endpoint",
    "Did the endpoint pass verification?",
    "The endpoint passed verification",
    "Release the deploy lease",
    "Record what happened to the model",
    "How does the run end?",
    "Clean up superseded models",
    "Model deployed",
]


# -- tuning ---------------------------------------------------------------------------------------------------


def test_a_run_that_goes_well_deploys_and_reports_every_step(workflow):
    run = workflow.run()
    assert run.status == "SUCCEEDED", run.cause
    assert run.path == [
        "Resolve run configuration",
        "Plan the data ranges",
        "Split the ranges",
        "Merge the ranges",
        "Is every range read right?",
        "Finish the dataset",
        "Start hyperparameter tuning",
        "Wait for tuning",
        "Check tuning job",
        "Has tuning finished?",
        "Evaluate model",
        "Register the model version",
        "Announce the decision",
        "Promote the new model?",
        *DEPLOY_PATH,
    ]
    out = run.output
    assert (out["outcome"], out["deployment"], out["model"]) == ("deployed", "created", NAMES.model)
    assert out["bestTrainingJob"] == BEST.to_json() and out["dataset"] == DATASET
    assert out["endpointCheck"]["passed"] and out["cleanup"]["kept"] == [NAMES.model]
    # Each step got what the ones before it answered.
    [(_, verify)] = [c for c in run.calls if c[0] == "Verify endpoint"]
    assert verify["model"] == CREATED and verify["dataset"] == DATASET and verify["deploymentAction"] == "created"


def test_tuning_is_polled_until_it_completes(workflow):
    run = workflow.run(check_tuning_job=answers(RUNNING, RUNNING, COMPLETED))
    assert run.status == "SUCCEEDED", run.cause
    assert run.invoked("Check tuning job") == 3 and run.path.count("Wait for tuning") == 3


def test_a_failed_tuning_job_ends_the_run_with_its_error_and_reason(workflow):
    failed = tuning("failed", "Failed", error="TuningJobFailed", cause="Tuning job kmeans-t-run failed: bad data")
    run = workflow.run(check_tuning_job=failed)
    assert (run.status, run.error, run.cause) == (
        "FAILED",
        "TuningJobFailed",
        "Tuning job kmeans-t-run failed: bad data",
    )
    assert run.path[-1] == "Tuning failed" and run.invoked("Evaluate model") == 0


def test_tuning_that_takes_too_long_stops_after_the_poll_budget(workflow):
    run = workflow.run({"maxTuningPollRounds": 3}, check_tuning_job=RUNNING)
    assert (run.status, run.error) == ("FAILED", "PollLimitExceeded")
    assert run.cause == (
        "Tuning job kmeans-t-run was still InProgress after 3 status checks (maxTuningPollRounds); "
        "it keeps running in SageMaker: stop it or raise the limit."
    )
    assert run.invoked("Check tuning job") == 3


# -- the gate and approval ------------------------------------------------------------------------------------


def test_a_kept_model_ends_the_run_without_touching_the_endpoint(workflow):
    run = workflow.run(evaluate_model=evaluation("keep"))
    assert run.status == "SUCCEEDED", run.cause
    assert run.path[-3:] == ["Announce the decision", "Promote the new model?", "Serving model kept"]
    assert run.output["outcome"] == "kept" and run.output["evaluation"]["gate"]["decision"] == "keep"
    assert run.invoked("Create model and endpoint config") == run.invoked("Deploy to endpoint") == 0


def test_an_approved_model_is_deployed(workflow):
    run = workflow.run({"approval": True}, answer=approve_with({"approved": True, "by": "ana"}))
    assert run.status == "SUCCEEDED", run.cause
    assert run.path[run.path.index("Promote the new model?") :] == [
        "Promote the new model?",
        "Ask for approval",
        "Approved?",
        "Record the approval",
        *DEPLOY_PATH,
    ]
    # The version was waiting for the person, then Approved by them; the model is made from it.
    events = [e["event"] for state, e in run.calls if state in RECORD_STATES]
    assert events == ["registered", "approved", "deployed"]
    [(_, approved)] = [c for c in run.calls if c[0] == "Record the approval"]
    assert approved["approval"] == {"approved": True, "by": "ana"}
    [(_, create)] = [c for c in run.calls if c[0] == "Create model and endpoint config"]
    assert create["version"]["status"] == "Approved"


@pytest.mark.parametrize(
    "answer", [{"approved": False, "by": "ana", "comment": "too few rows"}, "yes", {"approved": "true"}]
)
def test_anything_but_an_approval_object_rejects_the_model_and_leaves_the_endpoint(workflow, answer):
    run = workflow.run({"approval": True}, answer=approve_with(answer))
    assert (run.status, run.error) == ("FAILED", "ModelRejected")
    assert run.path[-3:] == ["Approved?", "Record the rejection", "Model rejected"]
    assert run.invoked("Deploy to endpoint") == 0
    assert f"Endpoint {NAMES.endpoint} was not touched. Report: s3://data/reports/run/report.json" in run.cause
    if isinstance(answer, dict) and "comment" in answer:
        assert run.cause.startswith("The model was rejected by ana: too few rows. ")


def test_an_unanswered_approval_times_out_and_leaves_the_endpoint(workflow):
    run = workflow.run({"approval": True, "approvalTimeoutSeconds": 1})
    assert (run.status, run.error) == ("FAILED", "ApprovalTimedOut")
    assert run.cause.startswith("Nobody approved or rejected the model within 1 seconds. ")
    assert run.invoked("Create model and endpoint config") == 0
    assert run.path[-2:] == ["Record the timeout", "Approval timed out"]


def test_a_failed_approval_task_ends_the_run_with_its_cause(workflow):
    def refuse(sfn, event):
        if token := token_of(event):
            sfn.send_task_failure(taskToken=token, error="ApprovalSystemDown", cause="the tool is offline")

    run = workflow.run({"approval": True}, answer=refuse)
    assert (run.status, run.error, run.cause) == (
        "FAILED",
        "ApprovalSystemDown",
        "Ask for approval failed: the tool is offline",
    )
    # The version does not stay PendingManualApproval: it is recorded as not deployed, with the failure.
    assert run.path[-4:] == ["Ask for approval", *RECORDED_FAILURE]
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert (recorded["event"], recorded["reason"]) == ("failed", "Ask for approval: the tool is offline")
    assert recorded["version"]["status"] == "PendingManualApproval" and recorded.get("replacedVersion") is None


@pytest.mark.parametrize(
    ("answer", "state"),
    [({"approved": True, "by": "ana"}, "Record the approval"), ({"approved": False}, "Record the rejection")],
)
def test_a_failed_record_of_the_answer_still_leaves_the_version_not_deployed(workflow, answer, state):
    run = workflow.run(
        {"approval": True}, answer=approve_with(answer), **{key_of(state): fault("SageMakerRequestError", "no")}
    )
    assert (run.status, run.error, run.cause) == ("FAILED", "SageMakerRequestError", f"{state} failed: no")
    assert run.path[-4:] == [state, *RECORDED_FAILURE]
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert (recorded["event"], recorded["reason"]) == ("failed", f"{state}: no")
    assert run.invoked("Take the deploy lease") == 0


def test_a_failed_record_of_the_timeout_still_times_out_the_run(workflow):
    run = workflow.run(
        {"approval": True, "approvalTimeoutSeconds": 1}, record_the_timeout=fault("SageMakerRequestError", "no")
    )
    assert (run.status, run.error, run.cause) == ("FAILED", "SageMakerRequestError", "Record the timeout failed: no")
    assert run.path[-4:] == ["Record the timeout", *RECORDED_FAILURE]


# -- deploying ------------------------------------------------------------------------------------------------


def test_a_busy_endpoint_is_waited_for_then_deployed(workflow):
    busy = deployment("busy", "Updating", previous="kmeans-ec-old")
    run = workflow.run(deploy_to_endpoint=answers(busy, busy, deployment("updated", "Updating", "kmeans-ec-old")))
    assert run.status == "SUCCEEDED", run.cause
    assert run.invoked("Deploy to endpoint") == 3 and run.path.count("Wait for the other deployment") == 2
    assert run.output["deployment"] == "updated" and run.output["previousEndpointConfig"] == "kmeans-ec-old"


@pytest.mark.parametrize("action", ["busy", "deletingFailed"])
def test_an_endpoint_that_never_becomes_free_ends_the_run_without_deploying(workflow, action):
    run = workflow.run({"maxEndpointPollRounds": 2}, deploy_to_endpoint=deployment(action, "Updating"))
    assert (run.status, run.error) == ("FAILED", "PollLimitExceeded")
    assert run.cause == (
        f"Endpoint {NAMES.endpoint} stayed Updating for 2 status checks; "
        f"the new config {NAMES.endpoint_config} was not deployed."
    )
    assert run.invoked("Check endpoint") == 0


def test_the_endpoint_is_polled_until_it_is_in_service(workflow):
    run = workflow.run(check_endpoint=answers(endpoint("running", "Creating"), endpoint("inService", "InService")))
    assert run.status == "SUCCEEDED", run.cause
    assert run.invoked("Check endpoint") == 2 and run.path.count("Wait for endpoint") == 2


def test_a_failed_or_rolled_back_deployment_ends_the_run_with_its_reason(workflow):
    for error, cause in [
        ("EndpointFailed", "the model did not pass the ping health check"),
        ("EndpointUpdateRolledBack", "update failed; kmeans-ec-old serves again"),
    ]:
        run = workflow.run(check_endpoint=endpoint("failed", "Failed", error=error, cause=cause))
        assert (run.status, run.error, run.cause) == ("FAILED", error, cause)
        assert run.path[-1] == "Deployment failed" and run.invoked("Verify endpoint") == 0


def test_an_endpoint_that_takes_too_long_stops_after_the_poll_budget(workflow):
    run = workflow.run({"maxEndpointPollRounds": 3}, check_endpoint=endpoint("running", "Creating"))
    assert (run.status, run.error) == ("FAILED", "PollLimitExceeded")
    assert run.cause == f"Endpoint {NAMES.endpoint} was still Creating after 3 status checks (maxEndpointPollRounds)."


# -- the endpoint check ---------------------------------------------------------------------------------------

WRONG = {
    "passed": False,
    "error": "EndpointVerificationFailed",
    "cause": "the endpoint's answers disagree with the model",
}


def test_a_first_deploy_that_fails_its_check_ends_without_a_restore(workflow):
    run = workflow.run(verify_endpoint=check(restore="deleted", **WRONG))
    assert (run.status, run.error) == ("FAILED", "EndpointVerificationFailed")
    assert run.cause == "the endpoint's answers disagree with the model."
    assert run.invoked("Check the previous model") == 0 and run.invoked("Clean up superseded models") == 0


def test_a_failed_check_waits_for_the_previous_config_to_serve_again(workflow):
    restoring = check(restore="updating", restored_endpoint_config_name="kmeans-ec-old", **WRONG)
    run = workflow.run(
        verify_endpoint=restoring,
        check_the_previous_model=answers(endpoint("running", "Updating"), endpoint("inService", "InService")),
    )
    assert (run.status, run.error) == ("FAILED", "EndpointVerificationFailed")
    assert run.cause == "the endpoint's answers disagree with the model. The previous config serves again."
    assert run.invoked("Check the previous model") == 2
    assert all(
        event["endpointConfigName"] == "kmeans-ec-old"
        for state, event in run.calls
        if state == "Check the previous model"
    )


def test_a_restore_that_fails_or_takes_too_long_is_named_in_the_cause(workflow):
    restoring = check(restore="updating", restored_endpoint_config_name="kmeans-ec-old", **WRONG)
    failed = workflow.run(
        verify_endpoint=restoring,
        check_the_previous_model=endpoint("failed", "Failed", error="EndpointFailed", cause="restore broke"),
    )
    assert (
        failed.cause
        == "the endpoint's answers disagree with the model. Putting the previous config back did not finish: restore broke"
    )
    slow = workflow.run(
        {"maxEndpointPollRounds": 2},
        verify_endpoint=restoring,
        check_the_previous_model=endpoint("running", "Updating"),
    )
    assert slow.cause == (
        "the endpoint's answers disagree with the model. Putting the previous config back did not "
        "finish: the endpoint was still Updating after 2 status checks"
    )
    assert (failed.error, slow.error) == ("EndpointVerificationFailed", "EndpointVerificationFailed")


def test_a_clean_up_error_leaves_the_deployment_standing_with_a_warning(workflow):
    run = workflow.run(clean_up_superseded_models=fault("SageMakerAccessDenied", "not allowed"))
    assert run.status == "SUCCEEDED", run.cause
    assert run.output["outcome"] == "deployed"
    assert run.output["cleanup"] == {
        "kept": [],
        "deleted": [],
        "warning": ("Clean up superseded models failed (the deployment stands): SageMakerAccessDenied"),
    }


def test_a_failed_announcement_does_not_stop_the_run(workflow):
    sns = boto3.client("sns", region_name=REGION)
    sns.delete_topic(TopicArn=workflow.topic)
    try:
        run = workflow.run()
    finally:
        sns.create_topic(Name="notifications")
    assert run.status == "SUCCEEDED", run.cause
    assert "Promote the new model?" in run.path and run.output["outcome"] == "deployed"
    # SNS's own error name; the Retry's States.TaskFailed matches it: the first attempt and two retries.
    assert run.task_errors() == ["SNS.NotFoundException"] * 3


# -- retries and step failures --------------------------------------------------------------------------------


# "Check the previous model" is reached only after a failed check; tests/infra/test_statemachine.py pins that its Retry
# is the same as every other step's.
DATA_STEP = ("Plan the data ranges", "Merge the ranges", "Finish the dataset")
# Not on a run without approval that deploys: the restore check, the second comparison (only when another model
# serves once the deploy lease is held) and the approval answer's records.
NOT_ON_A_GOOD_RUN = {
    "Check the previous model",
    "Compare with the model serving now",
    "Record the approval",
    "Record the rejection",
    "Record the timeout",
}
ON_A_GOOD_RUN = [s for s in LAMBDA_STATES if s not in NOT_ON_A_GOOD_RUN]
SAGEMAKER_STEPS = [
    s
    for s in ON_A_GOOD_RUN
    if s not in ("Resolve run configuration", *DATA_STEP, "Take the deploy lease", "Release the deploy lease")
]
LAMBDAS_OWN = ["Lambda.TooManyRequestsException", "Lambda.ServiceException", "Runtime.ExitError", "Sandbox.Timedout"]


def key_of(state: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", state.lower()).strip("_")


# The 15-minute steps are not retried after their Lambda timeout: the same input takes as long again.
LONG_STEPS = ["Merge the ranges", "Evaluate model", "Compare with the model serving now"]


def test_every_step_retries_lambdas_own_errors_and_a_crash(workflow):
    def errors(state):
        return [e for e in LAMBDAS_OWN if not (state in LONG_STEPS and e == "Sandbox.Timedout")]

    run = workflow.run(**{key_of(state): answers(*map(fault, errors(state)), HAPPY[state]) for state in ON_A_GOOD_RUN})
    assert run.status == "SUCCEEDED", run.cause
    assert run.task_errors() == [e for state in ON_A_GOOD_RUN for e in errors(state)]
    assert all(run.invoked(state) == len(errors(state)) + 1 for state in ON_A_GOOD_RUN)


def test_a_step_that_keeps_crashing_fails_the_run_naming_the_step(workflow):
    run = workflow.run(merge_the_ranges=fault("Runtime.ExitError", "Runtime exited with error: signal: killed"))
    assert (run.status, run.error) == ("FAILED", "Runtime.ExitError")
    assert run.cause == "Merge the ranges failed: Runtime exited with error: signal: killed"
    assert run.invoked("Merge the ranges") == 3  # the first attempt and two retries


@pytest.mark.parametrize("state", LONG_STEPS)
def test_a_15_minute_step_that_times_out_fails_at_once_saying_why(workflow, state):
    stubs = {key_of(state): fault("Sandbox.Timedout", "Task timed out after 900.00 seconds")}
    if state == "Compare with the model serving now":  # reached once the lease finds another model serving
        stubs["take_the_deploy_lease"] = lease(compare_again=True, serving_model="kmeans-m-other")
    run = workflow.run(**stubs)
    assert (run.status, run.error) == ("FAILED", "Sandbox.Timedout")
    assert run.cause.startswith(f"{state} failed: it did not finish within its Lambda timeout of 15 minutes")
    assert "not retried" in run.cause and run.invoked(state) == 1
    assert run.invoked("Release the deploy lease") == (state == "Compare with the model serving now")


def test_sagemaker_throttling_is_retried_six_times_on_every_sagemaker_step_with_scaled_waits(workflow, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(moto_patches, "_sleep", waits.append)
    monkeypatch.setenv(moto_patches.RETRY_SCALE_VARIABLE, "0.001")
    throttled = [fault("SageMakerThrottlingError", "Rate exceeded")] * 6
    run = workflow.run(**{key_of(state): answers(*throttled, HAPPY[state]) for state in SAGEMAKER_STEPS})
    assert run.status == "SUCCEEDED", run.cause
    assert run.task_errors() == ["SageMakerThrottlingError"] * 6 * len(SAGEMAKER_STEPS)
    assert all(run.invoked(state) == 7 for state in SAGEMAKER_STEPS)
    # IntervalSeconds 2, BackoffRate 2, MaxDelaySeconds 60, full jitter: each wait is at most its cap, scaled.
    caps = [min(2 * 2**n, 60) * 0.001 for n in range(6)] * len(SAGEMAKER_STEPS)
    assert len(waits) == len(caps) and all(0 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))


def test_a_step_still_throttled_after_six_retries_fails_naming_the_step(workflow):
    run = workflow.run(deploy_to_endpoint=fault("SageMakerThrottlingError", "Rate exceeded"))
    assert (run.status, run.error) == ("FAILED", "SageMakerThrottlingError")
    assert run.cause == "Deploy to endpoint failed: Rate exceeded" and run.invoked("Deploy to endpoint") == 7


def test_throttling_is_not_retried_where_no_sagemaker_call_is_made(workflow):
    run = workflow.run(resolve_run_configuration=fault("SageMakerThrottlingError", "Rate exceeded"))
    assert (run.status, run.error, run.invoked("Resolve run configuration")) == (
        "FAILED",
        "SageMakerThrottlingError",
        1,
    )


def test_an_account_quota_is_not_retried_and_names_the_step(workflow):
    run = workflow.run(start_hyperparameter_tuning=fault("SageMakerLimitExceededError", "the account-level limit"))
    assert (run.status, run.error) == ("FAILED", "SageMakerLimitExceededError")
    assert run.cause == "Start hyperparameter tuning failed: the account-level limit"
    assert run.invoked("Start hyperparameter tuning") == 1 and run.path[-1] == "A step failed"


def test_a_step_error_that_is_a_json_message_is_quoted_by_its_message(workflow):
    # A Lambda function error's cause is the JSON {errorMessage, errorType, stackTrace}: the Fail state quotes the message.
    run = workflow.run(evaluate_model=fault("ReportWriteFailed", "could not write the report"))
    assert (run.error, run.cause) == ("ReportWriteFailed", "Evaluate model failed: could not write the report")


# -- the deploy lease ------------------------------------------------------------------------------------------


def test_a_busy_lease_is_waited_for_then_taken_and_released_after_the_check(workflow):
    run = workflow.run(take_the_deploy_lease=answers(lease(False), lease(False), lease()))
    assert run.status == "SUCCEEDED", run.cause
    assert run.invoked("Take the deploy lease") == 3 and run.path.count("Wait for the deploy lease") == 2
    # Each try says how many came before it: the lease step answers with a wait that grows with the tries.
    assert [event["attempt"] for name, event in run.calls if name == "Take the deploy lease"] == [0, 1, 2]
    assert run.invoked("Release the deploy lease") == 1
    # Taken with this execution's id and what the evaluation compared with; renewed by the deploy and checks.
    [(_, taken), *_] = [c for c in run.calls if c[0] == "Take the deploy lease"]
    owner = taken["leaseOwner"]
    assert owner.endswith(":branch-" + str(workflow.count)) and taken["action"] == "acquire"
    assert "evaluatedAgainst" not in taken or taken["evaluatedAgainst"] is None
    for state in ("Deploy to endpoint", "Check endpoint", "Release the deploy lease"):
        assert all(event["leaseOwner"] == owner for name, event in run.calls if name == state), state
    assert run.output["deployLease"]["held"] is True


def test_a_lease_that_never_frees_ends_the_run_without_deploying_and_holds_nothing(workflow):
    run = workflow.run({"maxEndpointPollRounds": 2}, take_the_deploy_lease=lease(False))
    assert (run.status, run.error) == ("FAILED", "PollLimitExceeded")
    assert run.cause.startswith(f"The deploy lease of endpoint {NAMES.endpoint} stayed taken for 2 tries")
    assert "execution arn:other holds it" in run.cause
    assert run.invoked("Create model and endpoint config") == 0 and run.invoked("Release the deploy lease") == 0
    # The version does not stay Approved although it never served: it is recorded as not deployed, saying why.
    assert run.path[-4:] == [
        "The deploy lease stayed taken",
        "Record what happened to the model",
        "How does the run end?",
        "Deploy lease not free",
    ]
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert recorded["event"] == "failed" and recorded.get("replacedVersion") is None
    assert recorded["reason"] == (
        "the deploy lease stayed taken for 2 tries (maxEndpointPollRounds): execution arn:other holds it"
    )


def test_another_model_serving_now_is_compared_again_under_the_lease_and_can_keep_serving(workflow):
    now = lease(compare_again=True, serving_model="kmeans-m-other", tolerance_percent=0.0)
    run = workflow.run(take_the_deploy_lease=now, compare_with_the_model_serving_now=evaluation("keep"))
    assert run.status == "SUCCEEDED", run.cause
    assert run.path[run.path.index("Take the deploy lease") :] == [
        "Take the deploy lease",
        "Is the deploy lease ours?",
        "Compare with the model serving now",
        "Does the new model still pass the gate?",
        "Keep the model serving now",
        "Release the deploy lease",
        "Record what happened to the model",
        "How does the run end?",
        "Serving model kept",
    ]
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert recorded["event"] == "kept"  # the version is Rejected: it lost the second comparison
    assert run.output["outcome"] == "kept" and run.invoked("Create model and endpoint config") == 0
    # The comparison ran with the lease's tolerance (0 against an overlapping execution's model).
    [(_, compared)] = [c for c in run.calls if c[0] == "Compare with the model serving now"]
    assert compared["config"]["gateTolerancePercent"] == 0


def test_a_deployment_names_the_version_it_replaced_and_only_a_deployment_does(workflow):
    before = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/kmeans-dev/7"
    serving = lease(serving_model="kmeans-m-before", serving_model_package_arn=before)
    run = workflow.run(take_the_deploy_lease=serving)
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert (recorded["event"], recorded["replacedVersion"]) == ("deployed", before)
    failed = workflow.run(take_the_deploy_lease=serving, verify_endpoint=check(restore="deleted", **WRONG))
    [(_, recorded)] = [c for c in failed.calls if c[0] == "Record what happened to the model"]
    assert recorded["event"] == "failed" and recorded.get("replacedVersion") is None


def test_a_new_model_that_still_passes_the_gate_is_deployed(workflow):
    now = lease(compare_again=True, serving_model="kmeans-m-other")
    run = workflow.run(take_the_deploy_lease=now)
    assert run.status == "SUCCEEDED", run.cause
    assert run.output["outcome"] == "deployed" and run.invoked("Compare with the model serving now") == 1
    assert run.path[run.path.index("Does the new model still pass the gate?") + 1] == "Create model and endpoint config"


@pytest.mark.parametrize(
    ("stubs", "ending"),
    [
        ({"create_model_and_endpoint_config": fault("SageMakerRequestError", "no")}, "A step failed"),
        ({"deploy_to_endpoint": fault("SageMakerRequestError", "no")}, "A step failed"),
        ({"check_endpoint": endpoint("failed", "Failed", error="EndpointFailed", cause="x")}, "Deployment failed"),
        ({"maxEndpointPollRounds": 2, "check_endpoint": endpoint("running", "Creating")}, "Endpoint took too long"),
        (
            {"maxEndpointPollRounds": 2, "deploy_to_endpoint": deployment("busy", "Updating")},
            "Endpoint did not become free",
        ),
        ({"verify_endpoint": check(restore="deleted", **WRONG)}, "Endpoint verification failed"),
        ({"verify_endpoint": fault("ModelArtifactError", "bad artifact")}, "A step failed"),
        ({"release_the_deploy_lease": fault("ResourceNotFoundException", "no table")}, "Model deployed"),
    ],
)
def test_every_way_out_after_the_lease_releases_it_first(workflow, stubs, ending):
    inputs = {k: stubs.pop(k) for k in list(stubs) if k == "maxEndpointPollRounds"}
    run = workflow.run(inputs, **stubs)
    after = ["Clean up superseded models"] if ending == "Model deployed" else []
    assert run.path[-4 - len(after) :] == [
        "Release the deploy lease",
        "Record what happened to the model",
        "How does the run end?",
        *after,
        ending,
    ]
    assert run.invoked("Release the deploy lease") == 1
    if ending == "Model deployed":  # a failed release still ends the run as it would have ended
        assert run.status == "SUCCEEDED" and run.output["outcome"] == "deployed"
    else:
        assert run.status == "FAILED"


@pytest.mark.parametrize(
    ("stubs", "reason"),
    [
        (
            {
                "deploy_to_endpoint": DeployResult(
                    action="leaseLost", endpoint_name=NAMES.endpoint, endpoint_status=None, cause="lease expired"
                ).to_json()
            },
            "lease expired",
        ),
        (
            {"check_endpoint": endpoint("failed", "InService", error="EndpointSuperseded", cause="another serves")},
            "another serves",
        ),
        (
            {"verify_endpoint": check(False, error="EndpointSuperseded", cause="replaced while checked")},
            "replaced while checked",
        ),
    ],
)
def test_a_run_overtaken_by_another_deployment_ends_superseded_not_failed(workflow, stubs, reason):
    run = workflow.run(**stubs)
    assert run.status == "SUCCEEDED", run.cause
    assert run.path[-4:] == [
        "Release the deploy lease",
        "Record what happened to the model",
        "How does the run end?",
        "Model superseded",
    ]
    [(_, recorded)] = [c for c in run.calls if c[0] == "Record what happened to the model"]
    assert recorded["event"] == "superseded"
    assert (run.output["outcome"], run.output["reason"]) == ("superseded", reason)
    assert run.output["model"] == NAMES.model and run.invoked("Clean up superseded models") == 0


def test_approval_outcomes_end_before_the_lease_is_taken(workflow):
    run = workflow.run({"approval": True}, answer=approve_with({"approved": False, "by": "ana"}))
    assert run.error == "ModelRejected" and run.invoked("Take the deploy lease") == 0
