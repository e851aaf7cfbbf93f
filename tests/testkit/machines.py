"""Run a small state machine through the offline runner's seams (moto plus `offline.moto_patches`), its Task states
calling a Python handler through the Lambda seam: how the seam tests pin one Step Functions behaviour at a time."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws

from offline import moto_patches
from testkit.aws import REGION


def run_machine(
    states: dict,
    handler: Callable[[Any], Any],
    execution_input: Any = None,
    *,
    query_language: str | None = "JSONata",
    buckets: tuple[str, ...] = (),
    before: Callable[[Any], None] | None = None,
    while_running: Callable[[Any, str, list], None] | None = None,
    after: Callable[[Any, str], None] | None = None,
    timeout: float = 60,
) -> dict:
    """The execution's description, with its history under "events". `before(s3)` runs once the buckets exist,
    `while_running(sfn, arn, events)` at each poll, `after(sfn, arn)` once the execution ended."""
    definition = {"StartAt": next(iter(states)), "States": states}
    if query_language:
        definition = {"QueryLanguage": query_language, **definition}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        moto_patches.install(lambda name, event: handler(event))
        try:
            s3 = boto3.client("s3", region_name=REGION)
            for bucket in buckets:
                s3.create_bucket(Bucket=bucket)
            if before:
                before(s3)
            role = boto3.client("iam", region_name=REGION).create_role(
                RoleName="runner", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
            package = io.BytesIO()
            with zipfile.ZipFile(package, "w") as archive:
                archive.writestr("app.py", "")
            function = boto3.client("lambda", region_name=REGION).create_function(
                FunctionName="step",
                Runtime="python3.12",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": package.getvalue()},
            )["FunctionArn"]
            sfn = boto3.client("stepfunctions", region_name=REGION)
            machine = sfn.create_state_machine(
                name="machine", roleArn=role, definition=json.dumps(definition).replace("FUNCTION", function)
            )
            arn = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name="run-1", input=json.dumps(execution_input or {})
            )["executionArn"]
            deadline = time.monotonic() + timeout
            while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
                assert time.monotonic() < deadline, "the execution did not end"
                if while_running:
                    while_running(sfn, arn, sfn.get_execution_history(executionArn=arn)["events"])
                time.sleep(0.02)
            described["events"] = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            if after:
                after(sfn, arn)
            return described
        finally:
            moto_patches.uninstall()


def lambda_task(**fields: Any) -> dict:
    """A Task state calling the handler with the state's input."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {"FunctionName": "FUNCTION", "Payload": "{% $states.input %}"},
        "End": True,
        **fields,
    }
