"""The offline runner fails where Step Functions fails: each seam of offline/moto_patches.py, pinned on a small
state machine run by moto's interpreter (as `make demo` runs the real one), against what the AWS documentation
and jsonata-js 2.0.6 (the JSONata Step Functions documents) say."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded, ProgramError
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from offline import moto_patches
from testkit.machines import lambda_task, run_machine

CAUGHT = [{"ErrorEquals": ["States.ALL"], "Output": {"caught": "{% $states.errorOutput %}"}, "Next": "Caught"}]


def run(
    states: dict,
    handler: Callable[[Any], Any] = lambda event: event,
    execution_input: Any = None,
    while_running: Callable[[Any, str, list], None] | None = None,
    after: Callable[[Any, str], None] | None = None,
) -> dict:
    """Run a JSONata state machine whose Task states call `handler` through the runner's Lambda seam."""
    return run_machine(states, handler, execution_input, while_running=while_running, after=after, timeout=30)


task = lambda_task


def caught(**fields: Any) -> dict:
    return {"T": task(Catch=CAUGHT, **fields), "Caught": {"Type": "Pass", "End": True}}


def output(described: dict) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


# ------------------------------------------------------------------------------------------------------------
# Errors: what States.ALL catches, and where a JSONata error counts
# ------------------------------------------------------------------------------------------------------------


def test_an_oversized_lambda_result_fails_the_execution_even_under_a_states_all_catch():
    """AWS: States.DataLimitExceeded is a terminal error that States.ALL cannot catch."""
    described = run(caught(), handler=lambda event: {"blob": "x" * 300_000})
    assert described["status"] == "FAILED" and described["error"] == "States.DataLimitExceeded"


def test_a_states_runtime_error_fails_the_execution_even_under_a_states_all_catch():
    """AWS: States.ALL cannot catch States.Runtime (here: a TimeoutSeconds that is not a number)."""
    described = run(caught(TimeoutSeconds="{% 'soon' %}"))
    assert described["status"] == "FAILED" and described["error"] == "States.Runtime"


def test_a_named_error_is_still_caught_by_states_all():
    def fails(event):
        raise ValueError("no")

    assert output(run(caught(), handler=fails))["caught"]["Error"] == "ValueError"


@pytest.mark.parametrize("field", ["Output", "Assign"])
def test_a_jsonata_error_in_a_tasks_output_or_assign_is_caught_by_its_catch(field):
    """A throwing expression is States.QueryEvaluationError, an error of the state like any other (AWS: Catch runs
    when the state meets a runtime error; only DataLimitExceeded and Runtime escape States.ALL)."""
    value = "{% $number('twelve') %}"
    state = caught(**({"Output": value} if field == "Output" else {"Assign": {"v": value}}))
    error = output(run(state))["caught"]
    assert error["Error"] == "States.QueryEvaluationError" and "$number('twelve')" in error["Cause"]


def test_an_output_that_evaluates_fine_is_the_states_output_once():
    calls = []
    states = caught(
        Output={"doubled": "{% $states.result.Payload.n * 2 %}"}, Assign={"seen": "{% $states.result.Payload.n %}"}
    )
    del states["T"]["End"]
    states["T"]["Next"] = "After"
    states["After"] = {
        "Type": "Pass",
        "Output": {"doubled": "{% $states.input.doubled %}", "seen": "{% $seen %}"},
        "End": True,
    }
    assert output(run(states, handler=lambda event: calls.append(event) or {"n": 21}, execution_input={"x": 1})) == {
        "doubled": 42,
        "seen": 21,
    }
    assert calls == [{"x": 1}]


def test_send_task_failure_brings_its_error_and_cause_to_the_catch():
    states = caught(
        Resource="arn:aws:states:::lambda:invoke.waitForTaskToken",
        Arguments={"FunctionName": "FUNCTION", "Payload": {"token": "{% $states.context.Task.Token %}"}},
    )
    tokens: list[str] = []
    answered: list[str] = []

    def answer(sfn, arn, events):
        if tokens and not answered:
            answered.append(tokens[0])
            sfn.send_task_failure(taskToken=tokens[0], error="Rejected", cause="MSD drift too large")

    error = output(run(states, handler=lambda event: tokens.append(event["token"]) or {}, while_running=answer))
    assert error["caught"] == {"Error": "Rejected", "Cause": "MSD drift too large"}


# ------------------------------------------------------------------------------------------------------------
# JSONata as jsonata-js 2.0.6 and Step Functions evaluate it
# ------------------------------------------------------------------------------------------------------------

# jsonata-js: $string(n) is JSON.stringify(Number(n.toPrecision(15))), so JavaScript's Number#toString layout.
JS_STRINGS = [
    ("1e15", "1000000000000000"),
    ("-1e15", "-1000000000000000"),
    ("1e16", "10000000000000000"),
    ("123456789012345678", "123456789012346000"),
    ("999999999999999999999", "1e+21"),
    ("1e21", "1e+21"),
    ("1.5e300", "1.5e+300"),
    ("0.000001", "0.000001"),
    ("1e-7", "1e-7"),
    ("0.1 + 0.2", "0.3"),
    ("100", "100"),
    ("2.5", "2.5"),
    ("{'a': 1e16, 'b': [0.1 + 0.2, true, null]}", '{"a":10000000000000000,"b":[0.3,true,null]}'),
    ("'x' & 1e15", "x1000000000000000"),
]


@pytest.mark.parametrize(("expression", "expected"), JS_STRINGS)
def test_string_of_a_number_is_written_as_jsonata_js_writes_it(expression, expected):
    written = expression if expression.startswith("'x'") else f"$string({expression})"
    states = {"P": {"Type": "Pass", "Output": {"s": "{% " + written + " %}"}, "End": True}}
    assert output(run(states))["s"] == expected


def test_a_character_outside_the_bmp_stays_one_character_in_a_variable():
    states = {
        "Keep": {"Type": "Pass", "Assign": {"name": "{% $states.input.name %}"}, "Next": "Use"},
        "Use": {
            "Type": "Pass",
            "Output": {
                "name": "{% $name %}",
                "length": "{% $length($name) %}",
                "first": "{% $substring($name, 0, 1) %}",
            },
            "End": True,
        },
    }
    assert output(run(states, execution_input={"name": "\U0001f600 caf\u00e9"})) == {
        "name": "\U0001f600 caf\u00e9",
        "length": 6,
        "first": "\U0001f600",
    }


def test_parse_reads_json_text_and_nothing_else():
    states = caught(Output={"value": "{% $parse($states.input.text) %}"})
    assert output(run(states, execution_input={"text": '{"errorMessage": "bad", "n": [1, null]}'}))["value"] == {
        "errorMessage": "bad",
        "n": [1, None],
    }
    for not_json in ("1 + 1", "$states", "NaN"):
        error = output(run(states, execution_input={"text": not_json}))["caught"]
        assert error["Error"] == "States.QueryEvaluationError", not_json


def test_eval_is_not_there_as_in_step_functions():
    error = output(run(caught(Output="{% $eval('1 + 1') %}")))["caught"]
    assert error["Error"] == "States.QueryEvaluationError" and "$eval" in error["Cause"]


AWS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_the_context_objects_timestamps_have_step_functions_format():
    """The context object's example in the AWS guide: "StartTime": "2019-03-26T20:14:13.192Z"."""
    states = {
        "T": task(
            Arguments={
                "FunctionName": "FUNCTION",
                "Payload": {
                    "started": "{% $states.context.Execution.StartTime %}",
                    "entered": "{% $states.context.State.EnteredTime %}",
                },
            },
            Output="{% $states.result.Payload %}",
        )
    }
    times = output(run(states))
    assert AWS_TIME.fullmatch(times["started"]) and AWS_TIME.fullmatch(times["entered"]), times
    assert times["started"] <= times["entered"]


# ------------------------------------------------------------------------------------------------------------
# The same seams under the project's own state machine
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a whole execution (its branch: tests/workflow/test_workflow_branches.py)
def test_a_failed_approval_ends_the_run_with_the_cause_its_answer_gave(tmp_path):
    from offline.runner import OfflineAWS
    from offline.sample_data import generate

    sample = generate(tmp_path, rows=1000, seed=3)
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, "incoming/t.csv")
        arn = aws.start(
            {
                "dataKey": "incoming/t.csv",
                "pollSeconds": 0,
                "maxTrainingJobs": 2,
                "maxParallelTrainingJobs": 2,
                "k": 3,
                "approval": True,
            },
            name="refused",
        )
        deadline = time.monotonic() + 120
        while not (requests := aws.approval_requests(arn)):
            assert time.monotonic() < deadline, "no approval request"
            time.sleep(0.05)
        aws.client("stepfunctions").send_task_failure(
            taskToken=requests[0]["token"], error="ApprovalSystemDown", cause="the change board's tool is offline"
        )
        result = aws.wait(arn, timeout=120)
    assert (result.status, result.error) == ("FAILED", "ApprovalSystemDown")
    assert result.cause == "Ask for approval failed: the change board's tool is offline"


def test_variables_keep_their_values_null_whole_numbers_and_text_that_looks_like_a_declaration():
    tricky = "$x:=/*offline-value*/{};"
    states = {
        "Keep": {
            "Type": "Pass",
            "Assign": {"nothing": None, "whole": 2.0, "list": [1, None, 2.5], "tricky": "{% $states.input.text %}"},
            "Next": "Use",
        },
        "Use": {
            "Type": "Pass",
            "Output": {
                "type": "{% $type($nothing) %}",
                "exists": "{% $exists($nothing) %}",
                "isNull": "{% $nothing = null %}",
                "whole": "{% $string($whole) %}",
                "list": "{% $string($list) %}",
                "nullInList": "{% $type($list[1]) %}",
                "tricky": "{% $tricky %}",
            },
            "End": True,
        },
    }
    assert output(run(states, execution_input={"text": tricky})) == {
        "type": "null",
        "exists": True,
        "isNull": True,
        "whole": "2",
        "list": "[1,null,2.5]",
        "nullInList": "null",
        "tricky": tricky,
    }


# ------------------------------------------------------------------------------------------------------------
# ASL parses, once per definition (seam 8); the execution history, paged (seam 9)
# ------------------------------------------------------------------------------------------------------------


def test_a_definition_is_parsed_once_however_often_it_is_created_and_run_and_a_bad_one_is_refused_each_time(
    monkeypatch,
):
    parsed: list[str] = []
    original = AmazonStateLanguageParser.__dict__["parse"].__func__

    def counting(definition: str) -> Any:
        parsed.append(definition)
        return original(definition)

    monkeypatch.setattr(AmazonStateLanguageParser, "parse", staticmethod(counting))
    comment = f"only this test's {uuid.uuid4()}"
    states = {"A": {"Type": "Pass", "Comment": comment, "Output": "{% $states.input %}", "End": True}}
    bad = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Bogus", "Comment": comment}}})
    refusals = []

    def create_bad_twice(sfn: Any, arn: str) -> None:
        role = arn.replace(":states:", ":iam:").split(":execution:")[0].replace(":iam:us-east-1:", ":iam::")
        for _ in range(2):
            with pytest.raises(ClientError) as refused:
                sfn.create_state_machine(name=f"bad-{len(refusals)}", roleArn=f"{role}:role/runner", definition=bad)
            refusals.append(str(refused.value))

    for _ in range(2):
        assert output(run(states, execution_input={"n": 1}, after=create_bad_twice)) == {"n": 1}
    mine = [d for d in parsed if comment in d and "Bogus" not in d]
    assert len(mine) == 1  # two creations and two executions, one parse
    assert len(refusals) == 4 and all("mismatched input '\"Bogus\"'" in refusal for refusal in refusals), refusals
    assert len([d for d in parsed if "Bogus" in d]) == 4


def test_the_history_comes_in_pages_oldest_or_newest_first_as_step_functions_pages_it():
    states = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(5)} | {"S5": {"Type": "Pass", "End": True}}
    read: dict[str, list] = {}

    def page_through(sfn: Any, arn: str) -> None:
        read["default"] = sfn.get_execution_history(executionArn=arn)["events"]
        for order in (False, True):
            events, token = [], None
            while True:
                page = sfn.get_execution_history(
                    executionArn=arn, maxResults=4, reverseOrder=order, **({"nextToken": token} if token else {})
                )
                assert 0 < len(page["events"]) <= 4
                events += page["events"]
                if not (token := page.get("nextToken")):
                    break
            read["newest first" if order else "oldest first"] = events
        with pytest.raises(ClientError, match="InvalidToken"):
            sfn.get_execution_history(executionArn=arn, nextToken="a token no history gave")

    run(states, after=page_through)
    everything = read["default"]
    assert [e["id"] for e in everything] == list(range(1, 15))  # started, six states entered and exited, succeeded
    assert everything[0]["type"] == "ExecutionStarted" and everything[-1]["type"] == "ExecutionSucceeded"
    assert read["oldest first"] == everything and read["newest first"] == everything[::-1]


# ------------------------------------------------------------------------------------------------------------
# Retry waits, scaled (seam 7)
# ------------------------------------------------------------------------------------------------------------


def test_a_retry_waits_its_backoff_times_the_scale_and_retries_as_often(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(moto_patches, "_sleep", waits.append)
    monkeypatch.setenv(moto_patches.RETRY_SCALE_VARIABLE, "0.5")
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) <= 4:
            raise type("Busy", (Exception,), {})("try again")
        return {"done": True}

    retry = [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4, "MaxDelaySeconds": 30}]
    described = run({"T": task(Retry=retry, Output="{% $states.result.Payload %}")}, flaky)
    assert output(described) == {"done": True} and len(calls) == 5
    assert waits == [1.0, 3.0, 9.0, 15.0]  # 2, 6, 18 and 54 capped at 30 seconds, each halved


def test_a_bad_retry_scale_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv(moto_patches.RETRY_SCALE_VARIABLE, "fast")
    with pytest.raises(ValueError, match=r"OFFLINE_RETRY_SCALE='fast': expected a number >= 0"):
        moto_patches.install(lambda name, event: event)
    monkeypatch.setenv(moto_patches.RETRY_SCALE_VARIABLE, "-1")
    with pytest.raises(ValueError, match="OFFLINE_RETRY_SCALE='-1'"):
        moto_patches.retry_scale()
    monkeypatch.delenv(moto_patches.RETRY_SCALE_VARIABLE)
    assert moto_patches.retry_scale() == 1.0  # unset: the ASL's own intervals, as `make demo` waits them


class _WatchedExecution:
    """An execution that notes what a reader would see the moment its status is set."""

    def __init__(self, state: Any, result: Any = None) -> None:
        self.output = self.error = self.cause = self.stop_date = None
        self.seen: list[tuple] = []
        env = SimpleNamespace(program_state=lambda: state, states=SimpleNamespace(get_input=lambda: result))
        self.exec_worker = SimpleNamespace(env=env)

    @property
    def exec_status(self) -> Any:
        return self.seen[-1][0] if self.seen else None

    @exec_status.setter
    def exec_status(self, status: Any) -> None:
        self.seen.append((status, self.output, self.error, self.cause, self.stop_date is not None))


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ProgramEnded(), ("SUCCEEDED", {"done": True}, None, None, True)),
        (
            ProgramError({"error": "Boom", "cause": "it broke"}),  # type: ignore[arg-type]
            ("FAILED", None, "Boom", "it broke", True),
        ),
    ],
)
def test_an_ended_execution_is_whole_when_its_status_says_it_ended(state, expected):
    """A poller on another thread (the runner's DescribeExecution) once read SUCCEEDED with no output: moto set the
    status first. Step Functions answers an ended execution whole."""
    moto_patches.install(lambda name, event: event)
    try:
        execution = _WatchedExecution(state, {"done": True})
        communication = BaseExecutionWorkerCommunication.__new__(BaseExecutionWorkerCommunication)
        communication.execution = execution  # type: ignore[assignment]
        communication.terminated()
    finally:
        moto_patches.uninstall()
    assert execution.seen == [expected]
