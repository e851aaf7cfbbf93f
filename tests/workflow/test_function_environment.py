"""Offline, as in Lambda, every function reads its own environment from the template, and handlers of different
functions run at the same time: the runner gives each invocation its own variables (no process-global copy, no
lock around handlers) and each function its own cache (what a warm process keeps), and attributes every AWS call
to the function that made it."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading

import pytest

from kmeans_pipeline.schemas.settings import (
    StackSettings,
    function_cache,
    function_environment,
    function_environment_set,
)
from offline.runner import OfflineAWS

PROBE = "function_environment_probe"
# One handler, deployed as two functions that differ only in NAME_PREFIX. Both must be inside their handler at
# once (the barrier) before either reads its settings again and calls S3 under its own name.
PROBE_SOURCE = textwrap.dedent(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    from kmeans_pipeline.aws.clients import client
    from kmeans_pipeline.schemas.settings import StackSettings, function_cache

    BOTH_INSIDE = threading.Barrier(2, timeout=30)


    def handler(event, context):
        if "pooled" in event:  # the function's own threads: a pool's workers, as a handler may start them
            def on_a_worker(_):
                prefix = StackSettings.from_env().name_prefix
                try:
                    client("s3").head_bucket(Bucket=f"pooled-{prefix}")
                except ClientError:
                    pass
                return prefix
            with ThreadPoolExecutor(2) as pool:
                return {"prefixes": list(pool.map(on_a_worker, range(event["pooled"])))}
        if "remember" in event:  # what this function's earlier invocations cached, then one more
            cache = function_cache("probe")
            seen = sorted(cache)
            cache[event["remember"]] = True
            return {"seen": seen}
        before = StackSettings.from_env().name_prefix
        BOTH_INSIDE.wait()
        s3 = client("s3")
        for _ in range(event["calls"]):
            try:
                s3.head_bucket(Bucket=f"probe-{StackSettings.from_env().name_prefix}")
            except ClientError:
                pass
        return {"before": before, "after": StackSettings.from_env().name_prefix}
    """
)
SHARED = {
    "ENDPOINT_NAME": "probe",
    "DATA_BUCKET": "probe-data",
    "KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/probe",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/probe",
    "KMEANS_IMAGE_URI": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
}


def probe_function(name_prefix: str) -> dict:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": f"{PROBE}/",
            "Handler": "app.handler",
            "Runtime": "python3.13",
            "Environment": {"Variables": {"NAME_PREFIX": name_prefix}},
        },
    }


@pytest.fixture
def probe_stack(tmp_path, monkeypatch):
    """A stack of two functions with one handler; NAME_PREFIX is red for one and blue for the other."""
    (tmp_path / PROBE).mkdir()
    (tmp_path / PROBE / "app.py").write_text(PROBE_SOURCE)
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Globals": {"Function": {"Environment": {"Variables": SHARED}}},
        "Resources": {"RedFunction": probe_function("red"), "BlueFunction": probe_function("blue")},
    }
    (tmp_path / "template.yaml").write_text(json.dumps(template))  # JSON is YAML
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NAME_PREFIX", raising=False)
    try:
        with OfflineAWS(root=tmp_path, stack_name="probe") as aws:
            yield aws
    finally:
        for module in (f"{PROBE}.app", PROBE):
            sys.modules.pop(module, None)


def test_two_functions_running_at_once_each_read_their_own_variable(probe_stack):
    aws = probe_stack
    answers: dict[str, dict] = {}

    def invoke(logical_id: str) -> None:
        answer = aws.client("lambda").invoke(
            FunctionName=aws.stack.physical[logical_id], Payload=json.dumps({"calls": 25}).encode()
        )
        answers[logical_id] = json.loads(answer["Payload"].read())

    callers = [threading.Thread(target=invoke, args=(logical,)) for logical in ("RedFunction", "BlueFunction")]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
    # A handler that had to wait for the other would have broken the barrier (a function error, no "before").
    assert answers == {
        "RedFunction": {"before": "red", "after": "red"},
        "BlueFunction": {"before": "blue", "after": "blue"},
    }
    # The template's variables reached the handlers only: the process's environment never held them.
    assert "NAME_PREFIX" not in os.environ
    # Every call is recorded under the function that made it, though both ran at once.
    calls = [
        (function, params["Bucket"]) for function, _, operation, params in aws.api_calls if operation == "HeadBucket"
    ]
    assert sorted(set(calls)) == [("BlueFunction", "probe-blue"), ("RedFunction", "probe-red")]
    assert len(calls) == 50
    assert aws.invocations == {"RedFunction": 1, "BlueFunction": 1}


def test_a_handlers_own_threads_run_as_its_function(probe_stack):
    """In Lambda a pool a handler starts lives in the function's process: its workers read the function's variables
    and call AWS with its role. Offline they read the same, and their calls count as the function's for the IAM
    checks (a drift check's listing on a pool's workers once went unchecked)."""
    aws = probe_stack
    answer = aws.client("lambda").invoke(
        FunctionName=aws.stack.physical["RedFunction"], Payload=json.dumps({"pooled": 4}).encode()
    )
    assert json.loads(answer["Payload"].read()) == {"prefixes": ["red"] * 4}
    calls = [(function, params["Bucket"]) for function, _, op, params in aws.api_calls if op == "HeadBucket"]
    assert calls == [("RedFunction", "pooled-red")] * 4


def test_each_function_keeps_its_own_cache_as_its_own_process_would(probe_stack):
    """What one function cached never spares another function a call: in AWS the other has its own process (and
    role), so a call it skips offline would go untested (the scoring API's cached serving model once hid that batch
    scoring's roles lacked sagemaker:DescribeModelPackage)."""
    aws = probe_stack

    def remember(logical_id: str, what: str) -> list[str]:
        answer = aws.client("lambda").invoke(
            FunctionName=aws.stack.physical[logical_id], Payload=json.dumps({"remember": what}).encode()
        )
        return json.loads(answer["Payload"].read())["seen"]

    assert remember("RedFunction", "red-1") == []
    assert remember("BlueFunction", "blue-1") == []  # not red's
    assert remember("RedFunction", "red-2") == ["red-1"]  # a warm process keeps its own
    assert remember("BlueFunction", "blue-2") == ["blue-1"]
    assert function_cache("probe") == {}  # nothing reached the process's own caches


def test_settings_are_read_from_the_invocations_environment_and_otherwise_from_the_process(monkeypatch):
    monkeypatch.setenv("NAME_PREFIX", "process")
    given = {**SHARED, "NAME_PREFIX": "invocation"}
    for key, value in SHARED.items():
        monkeypatch.setenv(key, value)
    assert StackSettings.from_env().name_prefix == "process"
    with function_environment_set(given):
        assert function_environment() is given
        assert StackSettings.from_env().name_prefix == "invocation"
        seen = []
        other = threading.Thread(target=lambda: seen.append(StackSettings.from_env().name_prefix))
        other.start()
        other.join()
        assert seen == ["process"]  # another thread is another invocation
    assert StackSettings.from_env().name_prefix == "process"
