"""`events/` holds what `sam local invoke` feeds each step: each file must be valid for that step's model."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.inputs import (
    CheckEndpointInput,
    CheckTuningInput,
    CleanUpInput,
    CreateModelInput,
    DeployEndpointInput,
    DeployLeaseInput,
    EvaluateModelInput,
    FinishDatasetInput,
    FinishScoresInput,
    MergeRangesInput,
    PlanDataInput,
    PlanScoresInput,
    RecordVersionInput,
    ResolveRunInput,
    ScoreRangeInput,
    SplitRangeInput,
    StartTuningInput,
    StepInput,
    TreatRangeInput,
    VerifyEndpointInput,
)
from kmeans_pipeline.schemas.run import RunRequest
from offline.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
STEPS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
# Each state machine step's input model (score_records is the scoring API's function URL, not a step).
INPUTS: dict[str, type[StepInput]] = {
    "resolve_run": ResolveRunInput,
    "plan_data": PlanDataInput,
    "split_range": SplitRangeInput,
    "merge_ranges": MergeRangesInput,
    "treat_range": TreatRangeInput,
    "finish_dataset": FinishDatasetInput,
    "start_tuning": StartTuningInput,
    "check_tuning": CheckTuningInput,
    "evaluate_model": EvaluateModelInput,
    "create_model": CreateModelInput,
    "deploy_endpoint": DeployEndpointInput,
    "check_endpoint": CheckEndpointInput,
    "verify_endpoint": VerifyEndpointInput,
    "clean_up": CleanUpInput,
    "record_version": RecordVersionInput,
    "deploy_lease": DeployLeaseInput,
    "plan_scores": PlanScoresInput,
    "score_range": ScoreRangeInput,
    "finish_scores": FinishScoresInput,
}
# The steps that ship numpy (functions/<step>/requirements.txt); every other step imports none of these.
NUMPY_STEPS = {
    "plan_data",
    "split_range",
    "merge_ranges",
    "treat_range",
    "evaluate_model",
    "verify_endpoint",
    "score_records",
    "check_drift",
    "plan_scores",
    "score_range",
    "finish_scores",
}
# Not state machine steps: the scoring API (its function URL's request) and the drift check (its schedule's event).
NOT_STATES = {"score_records", "check_drift"}


def test_every_step_has_an_event():
    assert len(STEPS) == 21
    for step in STEPS:
        assert (EVENTS / f"{step}.json").exists(), f"events/{step}.json is missing"


def required_fields(model: type[StepInput]) -> list[str]:
    return [field.alias for field in model.model_fields.values() if field.is_required()]


def event(step: str) -> dict:
    return json.loads((EVENTS / f"{step}.json").read_text())


def test_every_state_machine_step_has_an_input_model():
    assert set(INPUTS) == set(STEPS) - NOT_STATES


@pytest.mark.parametrize("step", STEPS)
def test_step_event_is_valid_for_its_step(step):
    if step == "score_records":  # not a state machine step: its function URL's request (payload format 2.0)
        request = event(step)
        assert request["version"] == "2.0" and request["requestContext"]["http"]["method"] == "POST"
        assert request["headers"]["content-type"] == "text/csv" and request["body"].startswith("id,tranCode,Amount\n")
        return
    if step == "check_drift":  # the schedule's event: the window ends at its time
        from kmeans_pipeline.steps.check_drift import window_of

        start, end = window_of(event(step), 60, None)  # type: ignore[arg-type]
        assert (end - start).total_seconds() == 3600 and end.isoformat() == "2026-11-23T02:00:00+00:00"
        return
    given = event(step)
    parsed = INPUTS[step].from_event(given)
    # Every key the step reads is in its event (null where a first run has none), as the state machine sends it.
    declared = {field.alias for field in INPUTS[step].model_fields.values()}
    assert declared <= set(given), f"events/{step}.json lacks {sorted(declared - set(given))}"
    if step == "resolve_run":
        RunRequest.model_validate(parsed.input)


def state_machine_payloads() -> list[tuple[str, str, dict]]:
    """(state, step, Payload) of every Lambda task in the state machines' ASL (the pipeline's and batch scoring's,
    a Distributed Map's children included), its function found through the template."""
    template = load_template(ROOT / "template.yaml")
    found = []
    for machine in (r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"):
        substitutions = machine["Properties"]["DefinitionSubstitutions"]
        definition = json.loads((ROOT / machine["Properties"]["DefinitionUri"]).read_text())
        states = dict(definition["States"])
        for state in definition["States"].values():
            states.update(state.get("ItemProcessor", {}).get("States", {}))
        for name, state in states.items():
            if state["Type"] != "Task" or not state["Resource"].endswith(":lambda:invoke"):
                continue
            placeholder = re.fullmatch(r"\$\{(\w+)\}", state["Arguments"]["FunctionName"]).group(1)
            logical = substitutions[placeholder]["Fn::GetAtt"][0]
            code_uri = template["Resources"][logical]["Properties"]["CodeUri"]
            found.append((name, Path(code_uri).name, state["Arguments"]["Payload"]))
    return found


@pytest.mark.parametrize(
    "state, step, payload", state_machine_payloads(), ids=[s for s, _, _ in state_machine_payloads()]
)
def test_the_state_machine_sends_each_step_what_its_input_model_requires(state, step, payload):
    """Every field a step requires is in the Payload its state sends, and every key sent is one the step reads."""
    model = INPUTS[step]
    declared = {field.alias for field in model.model_fields.values()}
    assert set(required_fields(model)) <= set(payload), f"{state} does not send all {model.__name__} requires"
    assert set(payload) <= declared, (
        f"{state} sends {sorted(set(payload) - declared)}, which {model.__name__} does not read"
    )


def test_the_asl_calls_every_state_machine_step():
    assert {step for _, step, _ in state_machine_payloads()} == set(INPUTS)


@pytest.mark.parametrize("step", sorted(INPUTS))
def test_a_step_ignores_keys_it_does_not_read_and_takes_null_as_absent(step):
    model = INPUTS[step]
    optional = [f.alias for f in model.model_fields.values() if not f.is_required()]
    given = {**event(step), "somethingTheStateMachineAlsoSends": {"any": "thing"}, **dict.fromkeys(optional)}
    parsed = model.from_event(given)
    assert all(getattr(parsed, name) is None for name, f in model.model_fields.items() if not f.is_required())


def handler_module(step: str):
    return importlib.import_module(f"functions.{step}.app")


@pytest.mark.parametrize(
    "step, field", [(step, field) for step, model in sorted(INPUTS.items()) for field in required_fields(model)]
)
@pytest.mark.parametrize("absent", ["missing", "null"])
def test_a_step_without_a_field_it_needs_fails_naming_the_field(step, field, absent, lambda_context):
    """The handler itself refuses the input, before it touches AWS, with the field's camelCase name."""
    given = event(step)
    if absent == "missing":
        del given[field]
    else:
        given[field] = None
    with pytest.raises(InvalidInputError, match=rf"^Invalid step input: {field} is required$"):
        handler_module(step).handler(given, lambda_context)


def test_a_step_input_with_a_wrong_field_names_it_and_still_names_what_is_missing(lambda_context):
    given = event("evaluate_model")
    del given["best"]
    given["dataset"]["trainRows"] = "many"
    with pytest.raises(InvalidInputError) as caught:
        handler_module("evaluate_model").handler(given, lambda_context)
    assert str(caught.value).startswith("Invalid step input: best is required; dataset.trainRows: Input should be")
    with pytest.raises(InvalidInputError, match="^Invalid step input: config, dataset, best are required$"):
        EvaluateModelInput.from_event({})


def test_console_example_is_a_valid_run_request():
    RunRequest.model_validate(json.loads((EVENTS / "execution-input-console.json").read_text()))


@pytest.mark.parametrize("step", STEPS)
def test_handlers_import_without_data_libraries(step):
    """Only the steps that ship numpy import it; the others only boto3, pydantic and Powertools."""
    code = (
        f"import sys, functions.{step}.app\n"
        "heavy = sorted({'pandas', 'numpy', 'sklearn', 'scipy', 'sagemaker'} & set(sys.modules))\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ("numpy" if step in NUMPY_STEPS else "")


def test_local_env_file_sets_every_variable_the_template_sets():
    """`sam local invoke --env-vars events/local-env.json` gives the handlers a complete, valid configuration."""
    from kmeans_pipeline.schemas.settings import StackSettings
    from offline.cfn import load_template

    variables = json.loads((EVENTS / "local-env.json").read_text())["Parameters"]
    template = load_template(ROOT / "template.yaml")
    assert set(variables) == set(template["Globals"]["Function"]["Environment"]["Variables"])
    StackSettings.from_env(variables)


def test_a_step_input_without_what_the_step_needs_names_the_field(lambda_context):
    from functions.create_model import app
    from kmeans_pipeline.errors import InvalidInputError

    event = json.loads((EVENTS / "create_model.json").read_text())
    del event["best"]
    with pytest.raises(InvalidInputError, match="best is required"):
        app.handler(event, lambda_context)
    event = json.loads((EVENTS / "deploy_endpoint.json").read_text())
    del event["endpointConfigName"]
    from functions.deploy_endpoint import app as deploy_app

    with pytest.raises(InvalidInputError, match="endpointConfigName is required"):
        deploy_app.handler(event, lambda_context)
