"""One list of the names a run can fail with (kmeans_pipeline.errors.error_names): every name the state machine
can produce, retries or catches, every name a step result or step error carries, and docs/operations.md's failure
table are held to it, so that a new failure cannot be named in only one place."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from kmeans_pipeline.errors import Failure, PipelineError, error_names, step_errors

ROOT = Path(__file__).resolve().parents[2]
# Both state machines: the pipeline's and batch scoring's.
MACHINES = {path.name: json.loads(path.read_text()) for path in sorted((ROOT / "statemachine").glob("*.asl.json"))}
LAYER = ROOT / "layers" / "shared" / "kmeans_pipeline"
NAMES = set(error_names())
# Errors of the platform, not of this project: Step Functions' (States.*) and Lambda's own (Lambda.*, Runtime.*,
# Sandbox.*); the state machine retries some, and "A step failed" passes Lambda's through (States.* become StepFailed).
PLATFORM = re.compile(r"^(States|Lambda|Runtime|Sandbox)\.\w+$")
# Results that carry an error name, and the variable the state machine assigns them to.
PASSED_THROUGH = {"tuningStatus", "endpoint", "verification", "failure"}


def all_states() -> dict[str, dict]:
    return {f"{machine}: {name}": state for machine, asl in MACHINES.items() for name, state in asl["States"].items()}


def fail_states() -> dict[str, dict]:
    return {name: state for name, state in all_states().items() if state["Type"] == "Fail"}


def test_both_state_machines_are_held_to_the_list():
    assert set(MACHINES) == {"pipeline.asl.json", "scoring.asl.json"}


def test_the_list_has_no_name_twice_and_every_step_error_is_a_pipeline_error():
    assert len(NAMES) == len(error_names())
    assert all(issubclass(error, PipelineError) for error in step_errors())
    assert "PipelineError" not in NAMES  # the base class is never raised


def test_every_name_a_fail_state_writes_is_in_the_list():
    for name, state in fail_states().items():
        error = state["Error"]
        if not error.startswith("{%"):
            assert error in NAMES, f"Fail state {name!r} writes {error}, which kmeans_pipeline.errors does not list"
            continue
        literals = set(re.findall(r"'([A-Za-z]\w*)'", error))  # 'States.' (a prefix test) is not a name
        assert literals <= NAMES, f"Fail state {name!r} writes {literals - NAMES}, not in kmeans_pipeline.errors"
        # A JSONata Error passes a step's error through: only from a result or a Catch this test knows.
        passed = set(re.findall(r"\$(\w+)\.error", error))
        assert passed and passed <= PASSED_THROUGH, f"Fail state {name!r} passes {passed} through"


def test_the_passed_through_errors_come_from_check_steps_results_and_catches():
    assigned: dict[str, set[str]] = {}
    for name, state in all_states().items():
        for variable in state.get("Assign", {}):
            assigned.setdefault(variable, set()).add(name)
        for catch in state.get("Catch", []):
            for variable, value in catch.get("Assign", {}).items():
                assigned.setdefault(variable, set()).add(f"{name} (Catch)")
                if variable == "failure":
                    assert value["error"] == "{% $states.errorOutput.Error %}"
    for variable in PASSED_THROUGH:
        assert assigned.get(variable), f"nothing assigns ${variable}"


def test_every_name_a_retry_or_catch_matches_is_in_the_list_or_the_platforms():
    for name, state in all_states().items():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for error in rule["ErrorEquals"]:
                assert error in NAMES or PLATFORM.match(error), f"{name} matches {error}, not in kmeans_pipeline.errors"


def test_step_results_name_their_errors_from_the_list_never_with_a_literal():
    """A step module names a failure with ``Failure.X`` (or a step error's class): an ``error="..."`` literal, or a
    string equal to a listed name, is a second place the name would live."""
    for path in sorted(LAYER.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "error":
                assert not isinstance(node.value, ast.Constant), (
                    f"{path.name}:{node.value.lineno}: error={node.value.value!r}"
                )
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in NAMES, (
                    f"{path.name}:{node.lineno}: {node.value!r} is written out, use errors.py"
                )


def test_every_failure_is_used_by_a_step_or_written_by_the_state_machine():
    sources = "\n".join(path.read_text() for path in (LAYER / "steps").glob("*.py"))
    asl = json.dumps(list(MACHINES.values()))
    for failure in Failure:
        assert f"Failure.{failure.name}" in sources or f"'{failure.value}'" in asl or f'"{failure.value}"' in asl, (
            f"{failure.value} is listed but nothing can fail with it"
        )


def test_the_operations_guide_lists_exactly_the_names_a_run_can_fail_with():
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("## What a failure looks like", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert len(documented) == len(set(documented)), "a name is in the failure table twice"
    assert set(documented) == NAMES
