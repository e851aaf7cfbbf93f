"""The four seams that turn moto 5.2.1 into a local AWS that runs this project's state machine for real.

All of them touch moto internals (see aws-facts.md), which is why pyproject.toml pins moto to 5.2.1:
1. JSONata: moto's interpreter leaves its JSONata evaluator empty; fill it with jsonata-python.
2. JSONata string variables: moto pastes them into the expression between quotes without escaping; escape them.
3. Executions: a second start_execution deep-copies earlier executions (and their locks); don't copy them.
4. Lambda: without Docker moto never runs handler code; call the real handler in-process instead.
5. EventBridge: moto matches rules (S3 "Object Created" events included) but cannot deliver to a state machine,
   and hands every event to disabled and schedule rules too; deliver as EventBridge does, when the runner asks.
"""

from __future__ import annotations

import json
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import jsonata
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.events.models import Rule
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import Execution

# function name -> callable(event) -> result; set by the runner for the functions it deployed.
LambdaInvoker = Callable[[str, Any], Any]

_lock = threading.Lock()
_invoker: LambdaInvoker | None = None
_installed = False
_deliver_to_state_machines = False
_originals: dict[str, Any] = {}


_jsonata_lock = threading.Lock()


def _eval_jsonata(expression: str) -> Any:
    # jsonata-python is not thread-safe; concurrent executions evaluate expressions on their own threads.
    try:
        with _jsonata_lock:
            return jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # the interpreter expects its own exception type for any evaluation error
        raise moto_jsonata.JSONataException("States.QueryEvaluationError", str(exc)) from exc


def _encode_declarations(bindings: dict[str, Any]) -> str:
    parts = []
    for reference, value in bindings.items():
        literal = json.dumps(value) if isinstance(value, str) else to_json_str(value, separators=(",", ":"))
        parts.append(f"{reference}:={literal};")
    return "".join(parts)


def _invoke(self: LambdaSimpleBackend, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict) -> bytes:
    if _invoker is None:
        raise RuntimeError("No Lambda invoker installed")
    name = function_name.split(":function:")[-1].split(":")[0]
    event = json.loads(body) if body else {}
    try:
        result = _invoker(name, event)
    except Exception as exc:  # a handler's exception becomes a Lambda function error, as in AWS
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(
            {
                "errorType": getattr(exc, "error_type", type(exc).__name__),
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-3:],
            }
        ).encode()
    return json.dumps(result).encode()


def _start_execution(state_machine_arn: str, event_json: str) -> None:
    boto3.client("stepfunctions", region_name=state_machine_arn.split(":")[3]).start_execution(
        stateMachineArn=state_machine_arn, name=str(uuid.uuid4()), input=event_json
    )


def _send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    # moto hands every event to every rule: a disabled rule receives nothing, and a schedule rule (no pattern,
    # which moto matches to anything) receives only its schedule.
    if self.state != "ENABLED":
        return
    if self.scheduled_expression and original_event.get("detail-type") != "Scheduled Event":
        return
    states = [t for t in self.targets if t["Arn"].split(":")[2] == "states"]
    # Uploads start runs only when the runner asked for event triggers; a schedule fires only when asked to.
    wanted = _deliver_to_state_machines or original_event.get("detail-type") == "Scheduled Event"
    if states and wanted and self.event_pattern.matches_event(original_event):
        for target in states:
            # EventBridge delivers asynchronously; so does this (and not inside the request that emitted it).
            text = json.dumps(original_event, default=str)  # now: moto reuses the dict for its next event
            threading.Thread(target=_start_execution, args=(target["Arn"], text), daemon=True).start()
    others = [t for t in self.targets if t not in states]
    if others:
        saved, self.targets = self.targets, others
        try:
            _originals["send_to_targets"](self, original_event, transform_input)
        finally:
            self.targets = saved


def install(invoker: LambdaInvoker, event_triggers: bool = False) -> None:
    """Apply the seams (idempotent); `invoker(function_name, event)` runs a deployed function's handler.

    With `event_triggers`, EventBridge rules that target the state machine start executions.
    """
    global _invoker, _installed, _deliver_to_state_machines
    with _lock:
        _invoker = invoker
        _deliver_to_state_machines = event_triggers
        if _installed:
            return
        _originals["eval"] = moto_jsonata._eval_jsonata
        _originals["encode"] = moto_jsonata.encode_jsonata_variable_declarations
        _originals["deepcopy"] = getattr(Execution, "__deepcopy__", None)
        _originals["invoke"] = LambdaSimpleBackend.invoke
        moto_jsonata._eval_jsonata = _eval_jsonata
        moto_jsonata.encode_jsonata_variable_declarations = _encode_declarations
        _patch_importers(_encode_declarations)
        Execution.__deepcopy__ = lambda self, memo: self
        LambdaSimpleBackend.invoke = _invoke
        _originals["send_to_targets"] = Rule.send_to_targets
        Rule.send_to_targets = _send_to_targets
        _installed = True


def _patch_importers(encode: Callable) -> None:
    # Modules that imported the function by name keep their own reference: patch those too.
    from moto.stepfunctions.parser.asl.eval import states, variable_store

    states.encode_jsonata_variable_declarations = encode
    variable_store.encode_jsonata_variable_declarations = encode


def uninstall() -> None:
    global _invoker, _installed
    with _lock:
        if not _installed:
            return
        moto_jsonata._eval_jsonata = _originals["eval"]
        moto_jsonata.encode_jsonata_variable_declarations = _originals["encode"]
        _patch_importers(_originals["encode"])
        if _originals["deepcopy"] is None:
            del Execution.__deepcopy__
        else:
            Execution.__deepcopy__ = _originals["deepcopy"]
        LambdaSimpleBackend.invoke = _originals["invoke"]
        Rule.send_to_targets = _originals["send_to_targets"]
        _invoker = None
        _installed = False
