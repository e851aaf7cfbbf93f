"""`events/` holds what `sam local invoke` feeds each step: each file must be valid for that step's model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmeans_pipeline.models import RunRequest, parse_step_input

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
STEPS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
REQUIRED = {
    "prepare_data": [],
    "start_tuning": ["dataset"],
    "check_tuning": ["tuning_job_name"],
    "create_model": ["best"],
    "deploy_endpoint": ["endpoint_config_name"],
    "check_endpoint": ["endpoint_config_name"],
    "clean_up": [],
    "evaluate_model": ["dataset", "best"],
    "verify_endpoint": ["dataset", "model"],
}
# The steps that ship numpy (functions/<step>/requirements.txt); every other step imports none of these.
NUMPY_STEPS = {"prepare_data", "evaluate_model", "verify_endpoint", "score_records"}


def test_every_step_has_an_event():
    assert len(STEPS) == 11
    for step in STEPS:
        assert (EVENTS / f"{step}.json").exists(), f"events/{step}.json is missing"


@pytest.mark.parametrize("step", STEPS)
def test_step_event_is_valid_for_its_step(step):
    event = json.loads((EVENTS / f"{step}.json").read_text())
    if step == "resolve_input":
        RunRequest.model_validate(event["input"])
        assert event["execution"]["name"] and event["execution"]["startTime"]
        return
    if step == "score_records":  # not a state machine step: its function URL's request (payload format 2.0)
        assert event["version"] == "2.0" and event["requestContext"]["http"]["method"] == "POST"
        assert event["headers"]["content-type"] == "text/csv" and event["body"].startswith("id,tranCode,Amount\n")
        return
    parsed = parse_step_input(event)
    for field in REQUIRED[step]:
        assert getattr(parsed, field) is not None, f"events/{step}.json lacks {field}"


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
    from kmeans_pipeline.settings import StackSettings
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
