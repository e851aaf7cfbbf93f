"""The ASL file itself: structure, retries, catches and JSONata expressions, read from statemachine/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonata
import pytest

ASL_PATH = Path(__file__).resolve().parents[2] / "statemachine" / "pipeline.asl.json"
ASL = json.loads(ASL_PATH.read_text())
STATES = ASL["States"]
SCORING = json.loads((ASL_PATH.parent / "scoring.asl.json").read_text())["States"]
# The state each state machine ends in when a step fails: one rule for the error name and the cause.
STEP_FAILURES = {"pipeline": STATES["A step failed"], "scoring": SCORING["Batch failed"]}
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
}
TASKS = {name: s for name, s in STATES.items() if s["Type"] == "Task" and s["Resource"].endswith(":lambda:invoke")}
SNS_TASKS = {name: s for name, s in STATES.items() if s["Type"] == "Task" and ":sns:" in s["Resource"]}


def targets(state: dict) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [c["Next"] for c in state.get("Choices", [])]
    found += [c["Next"] for c in state.get("Catch", [])]
    return found


def expressions(value):
    if isinstance(value, str):
        if value.startswith("{%"):
            yield value[2:-2].strip()
    elif isinstance(value, dict):
        for v in value.values():
            yield from expressions(v)
    elif isinstance(value, list):
        for v in value:
            yield from expressions(v)


def test_one_query_language_throughout():
    assert ASL["QueryLanguage"] == "JSONata"
    assert not any("QueryLanguage" in s for s in STATES.values())
    text = ASL_PATH.read_text()
    for jsonpath_field in ("InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "ItemsPath"):
        assert f'"{jsonpath_field}"' not in text


def test_every_state_is_reachable_and_every_transition_exists():
    reachable, todo = set(), [ASL["StartAt"]]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        assert name in STATES, f"transition to missing state {name}"
        reachable.add(name)
        todo.extend(targets(STATES[name]))
    assert reachable == set(STATES)


MAPS = {name: s for name, s in STATES.items() if s["Type"] == "Map"}


def test_the_data_steps_maps_read_their_items_from_s3_write_their_results_there_and_fail_on_one_child():
    """Nothing that grows with the input rides in the execution: each Distributed Map reads its items from the
    object its step wrote (ItemReader) and writes its children's results to S3 (ResultWriter); one failed child
    fails the Map (no tolerated failures), whose Catch names it."""
    assert set(MAPS) == {"Split the ranges", "Read ranges again", "Write the treated features"}
    for name, state in MAPS.items():
        assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        assert state["ItemReader"]["Resource"] == "arn:${Partition}:states:::s3:getObject"
        assert state["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
        assert state["ResultWriter"]["Resource"] == "arn:${Partition}:states:::s3:putObject"
        assert "work/map-runs" in state["ResultWriter"]["Arguments"]["Prefix"]
        assert state["ToleratedFailureCount"] == 0 and state["MaxConcurrency"] == "{% ${MaxDataWorkers} %}"
        assert state["Output"] == "{% $states.input %}"  # the results stay in S3
        [catch] = state["Catch"]
        assert catch["Next"] == "A step failed" and catch["Assign"]["failure"]["step"] == name
        [child] = state["ItemProcessor"]["States"].values()
        assert child["Resource"] == "arn:${Partition}:states:::lambda:invoke" and child["End"] is True
        assert any(set(r["ErrorEquals"]) == LAMBDA_ERRORS for r in child["Retry"])
        assert "Catch" not in child  # a child's failure is the Map's


# The 15-minute steps: their Lambda timeout is deterministic for the same input, so every retry would burn
# another 15 minutes before the same failure.
LONG_STEPS = {"Merge the ranges", "Evaluate model", "Compare with the model serving now"}
# The steps that run while this execution holds the deploy lease: every way out of them releases it first.
UNDER_THE_LEASE = {
    "Take the deploy lease",
    "Compare with the model serving now",
    "Create model and endpoint config",
    "Deploy to endpoint",
    "Check endpoint",
    "Verify endpoint",
    "Check the previous model",
}

# The steps between registering the version and taking the deploy lease: a failure in one of them ends the run through
# "Record what happened to the model", so that the version is not left PendingManualApproval (or Approved).
AFTER_REGISTRATION = {"Record the approval", "Record the rejection", "Record the timeout"}


def test_every_lambda_task_has_the_recommended_retry_and_a_catch():
    assert len(TASKS) == 21
    for name, task in TASKS.items():
        assert task["Resource"] == "arn:${Partition}:states:::lambda:invoke", name
        lambda_retry = next(r for r in task["Retry"] if set(r["ErrorEquals"]) == LAMBDA_ERRORS)
        assert lambda_retry["JitterStrategy"] == "FULL" and "MaxDelaySeconds" in lambda_retry
        catch = task["Catch"][-1]  # a 15-minute step catches its timeout first (below)
        assert catch["ErrorEquals"] == ["States.ALL"] and len(task["Catch"]) == 1 + (name in LONG_STEPS)
        if name == "Clean up superseded models":
            # After a verified deploy: a failed clean-up is reported, the deployment stands.
            assert STATES[catch["Next"]]["Type"] == "Succeed" and "warning" in catch["Assign"]["cleanup"]
            continue
        if name == "Record what happened to the model":
            # After the lease's release: a failed registry update does not change how the run ends.
            assert catch["Next"] == "How does the run end?" and "registryWarning" in catch["Assign"]
            continue
        if name == "Release the deploy lease":
            # A failed release ends the run as it would have ended (the lease expires by itself), after the registry
            # hears of it.
            assert catch["Next"] == "Record what happened to the model" and "release" in catch["Assign"]
            continue
        for each in task["Catch"]:
            assert each["Assign"]["failure"]["step"] == name
            if name in UNDER_THE_LEASE:
                assert each["Next"] == "Release the deploy lease" and each["Assign"]["ending"] == "A step failed"
            elif name in AFTER_REGISTRATION:
                assert each["Next"] == "Record what happened to the model"
                assert each["Assign"]["ending"] == "A step failed"
            else:
                assert STATES[each["Next"]]["Type"] == "Fail"


def test_every_way_out_after_the_lease_is_taken_releases_it_first():
    """From the lease's state on, every path to a Fail or Succeed state passes the release, and the release's
    Choice routes each ending to a state that exists."""
    ending = STATES["How does the run end?"]
    routed = {c["Next"] for c in ending["Choices"]} | {ending["Default"]}
    assert routed <= set(STATES)
    assert {c["Condition"] for c in ending["Choices"]} == {
        f"{{% $ending = '{n}' %}}" for n in routed - {"A step failed"}
    }

    def ends_without_release(name: str, seen: set[str]) -> list[str]:
        if name in seen or name == "Release the deploy lease":
            return []
        seen.add(name)
        state = STATES[name]
        if state["Type"] in ("Fail", "Succeed"):
            return [name]
        return [end for target in targets(state) for end in ends_without_release(target, seen)]

    # The only way out without the release is giving up waiting for the lease (never taken): the version hears of it.
    gave_up = "The deploy lease stayed taken"
    assert [c["Next"] for c in STATES["Is the deploy lease ours?"]["Choices"]].count(gave_up) == 1
    assert STATES[gave_up]["Assign"] == {"ending": "Deploy lease not free"}
    assert STATES[gave_up]["Next"] == "Record what happened to the model"
    assert ends_without_release("Is the deploy lease ours?", {gave_up}) == []
    for note in ("The deploy lease was lost", "The deployment ended", "Another deployment replaced this one"):
        assert STATES[note]["Next"] == "Release the deploy lease" and "ending" in STATES[note]["Assign"]


def test_approval_outcomes_come_before_the_lease_so_they_hold_nothing():
    assert STATES["Promote the new model?"]["Default"] == "Take the deploy lease"
    assert [c["Next"] for c in STATES["Approved?"]["Choices"]] == ["Record the approval"]
    assert STATES["Record the approval"]["Next"] == "Take the deploy lease"
    assert STATES["Model rejected"]["Type"] == STATES["Approval timed out"]["Type"] == "Fail"


def test_throttling_is_retried_by_name_on_every_sagemaker_step():
    from kmeans_pipeline import errors

    for name in (
        "Start hyperparameter tuning",
        "Check tuning job",
        "Evaluate model",
        "Create model and endpoint config",
        "Deploy to endpoint",
        "Check endpoint",
        "Verify endpoint",
        "Check the previous model",
        "Clean up superseded models",
    ):
        retried = {e for r in TASKS[name]["Retry"] for e in r["ErrorEquals"]}
        assert "SageMakerThrottlingError" in retried, name
    every_retried = {e for t in TASKS.values() for r in t["Retry"] for e in r["ErrorEquals"]} - LAMBDA_ERRORS
    ours = {e for e in every_retried if "." not in e}  # Sandbox.* and States.* are Step Functions' own
    assert ours <= {n for n in dir(errors) if n.endswith("Error")}  # names that exist as classes


def test_every_step_is_retried_after_a_crashed_or_timed_out_invocation():
    """Every step is idempotent (same names, create-or-reuse), so an invocation that died midway is retried; a
    15-minute step that ran out of time is not (the same input takes as long again)."""
    for name, task in TASKS.items():
        retried = {e for r in task["Retry"] for e in r["ErrorEquals"]}
        assert {"Runtime.ExitError", "States.Timeout"} <= retried, name
        assert ("Sandbox.Timedout" in retried) is (name not in LONG_STEPS), name


def test_a_long_step_that_times_out_fails_at_once_saying_why_and_what_to_change():
    for name in LONG_STEPS:
        first = TASKS[name]["Catch"][0]
        assert first["ErrorEquals"] == ["Sandbox.Timedout"]
        assert first["Next"] == ("Release the deploy lease" if name in UNDER_THE_LEASE else "A step failed")
        assert first["Assign"]["failure"]["step"] == name
        assert (
            "15 minutes" in first["Assign"]["failure"]["cause"] and "not retried" in first["Assign"]["failure"]["cause"]
        )


def test_an_account_quota_is_not_retried():
    """ResourceLimitExceeded does not clear in minutes: the run ends at once with SageMaker's message."""
    for task in TASKS.values():
        assert not any("SageMakerLimitExceededError" in r["ErrorEquals"] for r in task["Retry"])


def test_the_notification_tasks_never_leave_a_run_hanging_or_half_done():
    assert set(SNS_TASKS) == {"Announce the decision", "Ask for approval"}
    announce, ask = SNS_TASKS["Announce the decision"], SNS_TASKS["Ask for approval"]
    # A lost notification does not stop the run: it goes on to the gate's choice either way.
    assert announce["Resource"].endswith(":sns:publish") and announce["Next"] == "Promote the new model?"
    assert [c["Next"] for c in announce["Catch"]] == ["Promote the new model?"]
    # The approval waits for a task token, at most the run's approval timeout, and every way out is named.
    assert ask["Resource"].endswith(":sns:publish.waitForTaskToken")
    assert ask["TimeoutSeconds"] == "{% $config.approvalTimeoutSeconds %}"
    assert "$states.context.Task.Token" in ask["Arguments"]["Message"]
    assert [(c["ErrorEquals"], c["Next"]) for c in ask["Catch"]] == [
        (["States.Timeout"], "Record the timeout"),
        (["States.ALL"], "Record what happened to the model"),
    ]
    # Any other failure of the approval task ends the run with its error and cause, once the version hears of it.
    assert ask["Catch"][1]["Assign"]["ending"] == "A step failed"
    assert ask["Catch"][1]["Assign"]["failure"]["step"] == "Ask for approval"
    # The registry hears of every answer before the run goes on.
    assert STATES["Record the timeout"]["Next"] == "Approval timed out"
    assert STATES["Record the rejection"]["Next"] == "Model rejected"
    assert STATES["Record the approval"]["Next"] == "Take the deploy lease"
    assert STATES["Approval timed out"]["Error"] == "ApprovalTimedOut"
    assert STATES["Model rejected"]["Error"] == "ModelRejected"


def test_the_poll_budget_counts_every_loop_that_waits_on_the_endpoint():
    from kmeans_pipeline.schemas.run import ENDPOINT_LOOPS

    loops = [n for n, s in STATES.items() if s["Type"] == "Choice" and "maxEndpointPollRounds" in json.dumps(s)]
    assert len(loops) == ENDPOINT_LOOPS, loops


def test_waits_a_run_may_ask_for_end_before_the_execution_times_out():
    from kmeans_pipeline.schemas.run import EXECUTION_TIMEOUT_SECONDS

    assert ASL["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS


def test_poll_intervals_come_from_the_input_and_loops_are_capped():
    waits = {name: s for name, s in STATES.items() if s["Type"] == "Wait"}
    # Waiting for another execution's lease: the lease step says how long (schemas/run.py lease_waits, at least 2 s
    # even with pollSeconds 0, growing with the tries; tests/step/test_lease.py).
    assert STATES["Wait for the deploy lease"]["Seconds"] == "{% $lease.retryInSeconds %}"
    del waits["Wait for the deploy lease"]
    assert waits and all(s["Seconds"] == "{% $config.pollSeconds %}" for s in waits.values())
    for choice in (
        "Has tuning finished?",
        "Is the endpoint in service?",
        "Is the endpoint free?",
        "Is the deploy lease ours?",
    ):
        conditions = " ".join(c["Condition"] for c in STATES[choice]["Choices"])
        assert re.search(r"Polls >= \$config\.max\w+PollRounds", conditions), choice


@pytest.mark.parametrize("expression", sorted({e for s in STATES.values() for e in expressions(s)}))
def test_every_jsonata_expression_parses(expression):
    jsonata.Jsonata(re.sub(r"\$\{\w+\}", "1", expression))  # a definition substitution is a number there


def test_every_variable_read_is_assigned_somewhere():
    assigned = {"states"}
    for state in STATES.values():
        assigned |= set(state.get("Assign", {}))
        for catch in state.get("Catch", []):
            assigned |= set(catch.get("Assign", {}))
    builtins = {"string", "type", "substring", "parse", "c", "t", "round", "exists", "max", "merge"}
    for name, state in STATES.items():
        for expression in expressions(state):
            for variable in re.findall(r"\$([A-Za-z_]\w*)", re.sub(r"'[^']*'", "", expression)):
                assert variable in assigned | builtins, f"{name} reads ${variable}, which nothing assigns"


def test_fail_states_carry_a_dynamic_error_and_cause():
    for name, state in STATES.items():
        if state["Type"] == "Fail":
            assert state["Cause"].startswith("{%"), name
            assert state["Error"], name


def test_both_state_machines_end_a_failed_step_by_the_same_rule():
    pipeline, scoring = STEP_FAILURES["pipeline"], STEP_FAILURES["scoring"]
    assert (pipeline["Error"], pipeline["Cause"]) == (scoring["Error"], scoring["Cause"])


@pytest.mark.parametrize("machine", STEP_FAILURES)
def test_step_failure_cause_names_the_step_and_quotes_the_error_message(machine):
    cause = jsonata.Jsonata(STEP_FAILURES[machine]["Cause"][2:-2].strip())
    failure = {
        "step": "Merge the ranges",
        "error": "DataValidationError",
        "cause": json.dumps(
            {"errorType": "DataValidationError", "errorMessage": 'line 3, column Amount: "x" is not a number'}
        ),
    }
    cause.assign("failure", failure)
    cause.register_lambda("parse", lambda text: json.loads(text))  # Step Functions' $parse
    assert cause.evaluate(None) == 'Merge the ranges failed: line 3, column Amount: "x" is not a number'
    failure["cause"] = "Task timed out after 900.00 seconds"
    assert cause.evaluate(None) == "Merge the ranges failed: Task timed out after 900.00 seconds"


@pytest.mark.parametrize("machine", STEP_FAILURES)
def test_step_functions_own_errors_become_a_legal_fail_error_with_the_name_in_the_cause(machine):
    state = STEP_FAILURES[machine]
    failure = {"step": "Check tuning job", "error": "States.Timeout", "cause": "Task timed out after 120 seconds"}
    error = jsonata.Jsonata(state["Error"][2:-2].strip())
    error.assign("failure", failure)
    assert error.evaluate(None) == "StepFailed"
    cause = jsonata.Jsonata(state["Cause"][2:-2].strip())
    cause.assign("failure", failure)
    cause.register_lambda("parse", lambda text: json.loads(text))
    assert cause.evaluate(None) == "Check tuning job failed: States.Timeout: Task timed out after 120 seconds"
    failure["error"] = "DataValidationError"
    assert error.evaluate(None) == "DataValidationError"
    # A Distributed Map's own failure (a child failed past the tolerated count) is a StepFailed too.
    failure.update(error="States.ExceedToleratedFailureThreshold", cause="The specified tolerated failure threshold")
    assert error.evaluate(None) == "StepFailed"


def test_the_batchs_announcement_is_retried_and_a_lost_one_does_not_fail_a_scored_batch():
    """As the pipeline's "Announce the decision": retried, and caught: the parts and the summary are in S3."""
    announce, pipelines = SCORING["Announce the scores"], STATES["Announce the decision"]
    assert announce["Retry"] == pipelines["Retry"]
    assert [(c["ErrorEquals"], c["Next"]) for c in announce["Catch"]] == [(["States.ALL"], "Batch scored")]
    assert announce["Catch"][0]["Output"] == announce["Output"] == "{% $merged.summary %}"
    assert announce["Next"] == "Batch scored"
