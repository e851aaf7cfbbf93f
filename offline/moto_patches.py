"""The seams that turn moto 5.2.1 into a local AWS that runs this project's state machine for real, and fails
where Step Functions fails.

All of them touch moto internals, which is why pyproject.toml pins moto to 5.2.1:
1. JSONata: moto's interpreter leaves its JSONata evaluator empty; fill it with jsonata-python, with jsonata-js
   2.0.6's `$string` number format (15 significant digits, then JavaScript's own layout: 1000000000000000,
   1e+21) and Step Functions' `$parse` (JSON only; moto defines it as `$eval`, which Step Functions lacks).
2. JSONata variables: moto pastes them into the expression as literals without escaping strings, with
   `ensure_ascii` (a character outside the BMP becomes two \\u escapes that jsonata-python reads as two broken
   halves) and with Python's timestamp format in the context object; write them as Step Functions holds them.
   And rather than parse the run's whole state as JSONata literals at every evaluation (most of an execution's
   time), bind the values the expression declares and compile each state's own expression once.
3. Executions: a second start_execution deep-copies earlier executions (and their locks); don't copy them.
4. Lambda: without Docker moto never runs handler code; call the real handler in-process instead.
5. EventBridge: moto matches rules (S3 "Object Created" events included) but cannot deliver to a state machine,
   and hands every event to disabled and schedule rules too; deliver as EventBridge does, when the runner asks.
6. Errors: a JSONata expression that throws is States.QueryEvaluationError (moto: States.Runtime); `States.ALL`
   does not match States.DataLimitExceeded or States.Runtime (AWS documents both as
   uncatchable by it; moto matches everything); a JSONata error in a Task's `Output` is the state's error, retried
   and caught like one in its `Assign` (moto evaluates `Output` after the state's Retry and Catch have been
   passed); SendTaskFailure keeps its cause (moto's request handler drops it).
7. Retry waits: moto's interpreter really sleeps every Retry's interval (IntervalSeconds, BackoffRate,
   MaxDelaySeconds, JitterStrategy, computed as moto computes them). The environment variable
   OFFLINE_RETRY_SCALE (a number >= 0, read at each wait; default 1, the ASL's own intervals, as `make demo`
   runs) multiplies that wait, so that the tests (tests/conftest.py sets 0.01) retry as often, in the same
   order, without sitting out the back-off. Nothing else changes: MaxAttempts, ErrorEquals and Catch are moto's.
8. ASL parses: moto parses a state machine's whole definition with its ANTLR grammar for every execution (and
   twice when the state machine is created), about half a second for this project's ASL. A definition's parse is
   a pure function of its text and the parsed program keeps no state of its own across executions (each
   execution's state is in its Environment), so each definition text is parsed once and its program shared, the
   few most recent kept. A definition that does not parse is refused as before, each time.
9. Execution history: moto's GetExecutionHistory ignores maxResults, nextToken and reverseOrder's paging and
   returns a deep copy of every event each call, so following a run by polling costs time in the square of its
   length. Page as Step Functions does: at most maxResults events (0 or none: 100), oldest first or, with
   reverseOrder, newest first, and a nextToken for the rest (an unknown token is InvalidToken).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import inspect
import json
import math
import os
import re
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import boto3
import jsonata
from jsonata import functions as jsonata_functions
from jsonata import utils as jsonata_utils
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.events.models import Rule
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.exceptions import InvalidToken
from moto.stepfunctions.parser.api import EvaluationFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsOutcome
from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome
from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJSONata
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.intrinsic import jsonata as moto_intrinsics
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

# function name -> callable(event) -> result; set by the runner for the functions it deployed.
LambdaInvoker = Callable[[str, Any], Any]

_lock = threading.Lock()
_invoker: LambdaInvoker | None = None
_installed = False
_deliver_to_state_machines = False
_originals: dict[str, Any] = {}


_jsonata_lock = threading.Lock()


class _StepFunctionsJSONataError(Exception):
    pass


def _parse(text: Any) -> Any:
    """Step Functions' $parse: a JSON text to its value (JavaScript's JSON.parse: no NaN or Infinity)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise _StepFunctionsJSONataError(f"$parse expects a JSON string, got {_js_json(text)}")

    def refuse(constant: str) -> Any:
        raise _StepFunctionsJSONataError(f"$parse: {constant} is not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise _StepFunctionsJSONataError(f"$parse: the string is not JSON ({exc})") from exc
    return jsonata_utils.Utils.convert_nulls(value)


def _no_eval(*_: Any) -> Any:
    raise _StepFunctionsJSONataError("$eval is not available in Step Functions (use $parse for JSON text)")


_COMPILED_KEPT = 1024
_compiled: OrderedDict[str, Any] = OrderedDict()  # expression text without its variables -> compiled (under the lock)


def _compile(expression: str) -> Any:
    compiled = _compiled.get(expression)
    if compiled is None:
        compiled = jsonata.Jsonata(expression)
        compiled.register_lambda("parse", _parse)
        compiled.register_lambda("eval", _no_eval)
        _compiled[expression] = compiled
        while len(_compiled) > _COMPILED_KEPT:
            _compiled.popitem(last=False)
    else:
        _compiled.move_to_end(expression)
    return compiled


def _eval_jsonata(expression: str) -> Any:
    text, bindings = _lift_values(expression)
    # jsonata-python is not thread-safe; concurrent executions evaluate expressions on their own threads.
    try:
        with _jsonata_lock:
            compiled = _compile(text)
            jsonata.Jsonata.CURRENT.jsonata = compiled  # what a new Jsonata sets; higher-order functions read it
            return compiled.evaluate(None, bindings)
    except Exception as exc:  # the interpreter expects its own exception type for any evaluation error
        raise moto_jsonata.JSONataException("States.QueryEvaluationError", str(exc)) from exc


# -- JSONata numbers as jsonata-js writes them --------------------------------------------------------------


def _js_number(value: Any) -> str:
    """A number as jsonata-js 2.0.6 writes it in $string, `&` and $clone: Number(value.toPrecision(15)), then
    JavaScript's Number#toString (plain digits up to 1e21, exponents beyond; 0.000001 plain, 1e-7 not)."""
    x = float(value)
    if not math.isfinite(x):
        raise _StepFunctionsJSONataError("D3001: Attempting to invoke string function on Infinity or NaN")
    x = float(f"{x:.15g}")
    if x == 0:
        return "0"
    sign, digit_tuple, exponent = decimal.Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), exponent + len(digits)  # x = 0.d1..dk x 10^n
    minus = "-" if sign else ""
    if k <= n <= 21:
        return minus + digits + "0" * (n - k)
    if 0 < n <= 21:
        return minus + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return minus + "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{minus}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _js_json(value: Any, indent: str = "", depth: int = 0) -> str:
    """JSON.stringify(value, jsonata-js's number replacer, indent): what $string writes for a non-string."""
    from jsonata.jsonata import Jsonata  # a function value is written as "" (the replacer's choice)
    from jsonata.parser import Parser

    if value is None or value is jsonata_utils.Utils.NULL_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return _js_number(value) if math.isfinite(float(value)) else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (Jsonata.JFunction, Parser.Symbol)) or callable(getattr(value, "call", None)):
        return '""'
    inner, outer = ("\n" + indent * (depth + 1), "\n" + indent * depth) if indent else ("", "")
    colon = ": " if indent else ":"
    if isinstance(value, dict):
        items = [
            json.dumps(str(k), ensure_ascii=False) + colon + _js_json(v, indent, depth + 1) for k, v in value.items()
        ]
        return "{" + inner + ("," + inner).join(items) + outer + "}" if items else "{}"
    if isinstance(value, (list, tuple)):
        items = [_js_json(v, indent, depth + 1) for v in value]
        return "[" + inner + ("," + inner).join(items) + outer + "]" if items else "[]"
    return json.dumps(str(value), ensure_ascii=False)


def _string(arg: Any, prettify: bool) -> str:
    from jsonata.jsonata import Jsonata
    from jsonata.parser import Parser

    if isinstance(arg, (Jsonata.JFunction, Parser.Symbol)):
        return ""
    return _js_json(arg, "  " if prettify else "")


# -- Variables and the context object as Step Functions holds them ------------------------------------------


def _aws_time(value: Any) -> Any:
    """A context-object timestamp in Step Functions' format, 2019-03-26T20:14:13.192Z (UTC, milliseconds)."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, datetime.datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _with_aws_times(states: Any) -> Any:
    context = states.get("context") if isinstance(states, dict) else None
    if not isinstance(context, dict):
        return states
    context = dict(context)
    for part, key in (("Execution", "StartTime"), ("State", "EnteredTime")):
        if isinstance(context.get(part), dict) and key in context[part]:
            context[part] = {**context[part], key: _aws_time(context[part][key])}
    return {**states, "context": context}


def _json_default(value: Any) -> Any:
    return _aws_time(value) if isinstance(value, datetime.datetime) else str(value)


# A declaration the encoder wrote: `$name:=/*offline-value*/<JSON>;`. The comment is JSONata, so the text stays an
# expression that means the same; _eval_jsonata binds such values instead of parsing them (see _lift_values).
_VALUE_MARK = "/*offline-value*/"
_MARKED_DECLARATION = re.compile(r"\$([A-Za-z0-9_$]+):=" + re.escape(_VALUE_MARK))
_JSON = json.JSONDecoder()


def _encode_declarations(bindings: dict[str, Any]) -> str:
    parts = []
    for reference, value in bindings.items():
        if reference == "$states":
            value = _with_aws_times(value)
        # ensure_ascii=False: jsonata-python reads a \ud83d\ude00 escape pair as two lone surrogates, not one character.
        try:
            literal = json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
            )
            mark = _VALUE_MARK
        except ValueError:  # NaN or Infinity: not JSON, left to the parser as moto leaves it
            literal = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
            mark = ""
        parts.append(f"{reference}:={mark}{literal};")
    return "".join(parts)


def _as_jsonata(value: Any) -> Any:
    """A JSON value as jsonata-python's parser makes a literal of it: null is its NULL_VALUE, an integral number an
    int, an array its JList."""
    if value is None:
        return jsonata_utils.Utils.NULL_VALUE
    if isinstance(value, float):
        return jsonata_utils.Utils.convert_number(value)
    if isinstance(value, list):
        return jsonata_utils.Utils.JList([_as_jsonata(item) for item in value])
    if isinstance(value, dict):
        return {key: _as_jsonata(item) for key, item in value.items()}
    return value


def _lift_values(expression: str) -> tuple[str, dict[str, Any]]:
    """The expression without the variable declarations _encode_declarations wrote, and their values to bind.

    moto pastes every variable into the expression as a literal, so each evaluation parsed the run's whole state
    again (most of an execution's time); bound instead, the rest of the text is the state's own expression, the
    same each time, and compiled once. moto writes the declarations at the start of the expression's block, after
    the intrinsic functions' own declarations, so binding them around the block means the same, unless a variable
    takes an intrinsic function's name (a later declaration replaces the function) or nothing but declarations is
    left: then the text is evaluated as written."""
    bindings: dict[str, Any] = {}
    kept: list[str] = []
    position = 0
    while (found := _MARKED_DECLARATION.search(expression, position)) is not None:
        value, end = _JSON.raw_decode(expression, found.end())
        if expression[end : end + 1] != ";":
            return expression, {}
        kept.append(expression[position : found.start()])
        bindings[found.group(1)] = value  # a later declaration of a name replaces an earlier one, as in the block
        position = end + 1
    if not bindings:
        return expression, {}
    rest = expression[position:]
    if not rest.strip().strip(")").strip() or any(
        f"${name}" in moto_intrinsics._DECLARATION_BY_VARIABLE_REFERENCE for name in bindings
    ):
        return expression, {}
    return "".join(kept) + rest, {name: _as_jsonata(value) for name, value in bindings.items()}


# -- Errors where Step Functions has them --------------------------------------------------------------------

_NOT_MATCHED_BY_ALL = {
    StatesErrorNameType.StatesStatesDataLimitExceeded.to_name(),
    StatesErrorNameType.StatesRuntime.to_name(),
}


def _error_equals(self: ErrorEqualsDecl, env: Any) -> None:
    error_name = env.stack[-1]
    if (
        ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names
        and getattr(error_name, "error_name", None) in _NOT_MATCHED_BY_ALL
    ):
        env.stack.pop()
        env.stack.append(False)
        return
    _originals["error_equals"](self, env)


def _string_jsonata(self: StringJSONata, env: Any) -> None:
    """An expression that throws fails its state with States.QueryEvaluationError, which Retry and Catch see, as
    in AWS; moto lets the exception through, and the state then fails with States.Runtime."""
    try:
        _originals["string_jsonata"](self, env)
    except moto_jsonata.JSONataException as exc:
        error = StatesErrorName(typ=StatesErrorNameType.StatesQueryEvaluationError)
        details = EventDetails(
            evaluationFailedEventDetails=EvaluationFailedEventDetails(
                error=error.error_name,
                cause=f"The JSONata expression '{self.expression}' threw an error during evaluation: {exc.details}",
            )
        )
        env.event_manager.add_event(
            context=env.event_history_context, event_type=HistoryEventType.EvaluationFailed, event_details=details
        )
        raise FailureEventException(
            FailureEvent(env=env, error_name=error, event_type=HistoryEventType.EvaluationFailed, event_details=details)
        ) from exc


_OUTPUT_DONE = "_offline_output_evaluated_by"


def _evaluate_with_timeout(self: ExecutionState, env: Any) -> None:
    _originals["evaluate_with_timeout"](self, env)
    if getattr(self, "output", None) is not None and not self._is_language_query_jsonpath():
        # Inside the state's Retry/Catch loop, as AWS treats it: an Output error is this state's error.
        self.output.eval(env=env)
        setattr(env, _OUTPUT_DONE, self)


def _eval_state_output(self: ExecutionState, env: Any) -> None:
    if getattr(env, _OUTPUT_DONE, None) is self:
        setattr(env, _OUTPUT_DONE, None)  # already evaluated (and the state's input reset to it) above
        return
    _originals["eval_state_output"](self, env)


def _send_task_failure(self: Any) -> Any:
    backend = self.stepfunction_backend
    arguments = {"error": self._get_param("error")}
    if "cause" in inspect.signature(backend.send_task_failure).parameters:
        arguments["cause"] = self._get_param("cause")
    backend.send_task_failure(self._get_param("taskToken"), **arguments)
    return sfn_responses.EmptyResult()


def _invoke(
    self: LambdaSimpleBackend, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict
) -> bytes:
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


# -- Retry waits, scaled ----------------------------------------------------------------------------------

RETRY_SCALE_VARIABLE = "OFFLINE_RETRY_SCALE"
_sleep = time.sleep  # every Retry wait goes through here (tests watch it)


def retry_scale() -> float:
    """The factor OFFLINE_RETRY_SCALE sets for every Retry wait: 1 (the ASL's own intervals) when unset."""
    text = os.environ.get(RETRY_SCALE_VARIABLE, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{RETRY_SCALE_VARIABLE}={text!r}: expected a number >= 0 (1 waits the ASL's own intervals)")
    return value


def _retrier_eval_body(self: RetrierDecl, env: Any) -> None:
    """moto's Retrier, step for step, but its wait is multiplied by retry_scale()."""
    self.error_equals.eval(env)
    if not env.stack.pop():
        env.stack.append(RetrierOutcome.Skipped)
        return
    self.max_attempts.eval(env=env)
    if env.stack.pop() == MaxAttemptsOutcome.EXHAUSTED:
        env.stack.append(RetrierOutcome.Failed)
        return
    self.interval_seconds.eval(env=env)
    self.backoff_rate.eval(env=env)
    self.max_delay_seconds.eval(env=env)
    self.jitter_strategy.eval(env=env)
    _sleep(env.stack.pop() * retry_scale())
    env.stack.append(RetrierOutcome.Executed)


# -- ASL parses, once per definition ------------------------------------------------------------------------

_PARSES_KEPT = 16
_parses: OrderedDict[str, tuple[Any, Any]] = OrderedDict()  # definition text -> (program, parse tree)
_parses_lock = threading.Lock()


def _fix_heap_keys(program: Any) -> None:
    """Give every component of a shared program its heap key now: moto draws one on first use, and two executions
    drawing at once could each file their retry counters under a different key."""
    seen: set[int] = set()
    pending = [program]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, EvalComponent):
            _ = item.heap_key
        if isinstance(item, Component):
            pending.extend(vars(item).values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())


def _parse_asl(definition: str) -> tuple[Any, Any]:
    with _parses_lock:
        if definition in _parses:
            _parses.move_to_end(definition)
            return _parses[definition]
    parsed = _originals["asl_parse"](definition)  # a definition that does not parse raises here, every time
    _fix_heap_keys(parsed[0])
    with _parses_lock:
        parsed = _parses.setdefault(definition, parsed)
        while len(_parses) > _PARSES_KEPT:
            _parses.popitem(last=False)
    return parsed


# -- Execution history, paged -------------------------------------------------------------------------------

_HISTORY_PAGE = 100  # Step Functions' default maxResults
_TOKEN_PREFIX = "offline-history:"


def _get_execution_history(self: Any) -> Any:
    backend = self.stepfunction_backend
    if not isinstance(backend, StepFunctionsParserBackend):  # moto's canned history, when executions do not run
        return _originals["get_execution_history"](self)
    execution = backend.describe_execution(execution_arn=self._get_param("executionArn"))
    env = execution.exec_worker.env if execution.exec_worker is not None else None
    events: list[Any] = []
    if env is not None:  # None: the execution has not started yet
        with env.event_manager._mutex:
            events = list(env.event_manager._history_event_list)
    newest_first = bool(self._get_param("reverseOrder"))
    token = self._get_param("nextToken")
    if token:
        try:
            if not token.startswith(_TOKEN_PREFIX):
                raise ValueError(token)
            after = int(token[len(_TOKEN_PREFIX) :])
        except ValueError:
            raise InvalidToken(f"{token!r} is not a token this history gave") from None
        events = [e for e in events if (e["id"] < after if newest_first else e["id"] > after)]
    if newest_first:
        events.reverse()
    size = self._get_param("maxResults") or _HISTORY_PAGE
    page = copy.deepcopy(events[:size])
    result: dict[str, Any] = {"events": page}
    if len(events) > size:
        result["nextToken"] = f"{_TOKEN_PREFIX}{page[-1]['id']}"
    return sfn_responses.ActionResult(result)


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
    retry_scale()  # a bad OFFLINE_RETRY_SCALE fails here, not inside an execution's Retry
    with _lock:
        _invoker = invoker
        _deliver_to_state_machines = event_triggers
        if _installed:
            return
        _originals["eval"] = moto_jsonata._eval_jsonata
        _originals["encode"] = moto_jsonata.encode_jsonata_variable_declarations
        _originals["deepcopy"] = getattr(Execution, "__deepcopy__", None)
        _originals["invoke"] = LambdaSimpleBackend.invoke
        _originals["string"] = jsonata_functions.Functions.__dict__["_string"]
        _originals["parse_declaration"] = moto_intrinsics._DECLARATION_BY_VARIABLE_REFERENCE.pop("$parse", None)
        _originals["error_equals"] = ErrorEqualsDecl._eval_body
        _originals["evaluate_with_timeout"] = ExecutionState._evaluate_with_timeout
        _originals["eval_state_output"] = ExecutionState._eval_state_output
        _originals["send_task_failure"] = sfn_responses.StepFunctionResponse.send_task_failure
        _originals["string_jsonata"] = StringJSONata._eval_body
        moto_jsonata._eval_jsonata = _eval_jsonata
        moto_jsonata.encode_jsonata_variable_declarations = _encode_declarations
        _patch_importers(_encode_declarations)
        jsonata_functions.Functions._string = staticmethod(_string)
        ErrorEqualsDecl._eval_body = _error_equals
        ExecutionState._evaluate_with_timeout = _evaluate_with_timeout
        ExecutionState._eval_state_output = _eval_state_output
        sfn_responses.StepFunctionResponse.send_task_failure = _send_task_failure
        StringJSONata._eval_body = _string_jsonata
        Execution.__deepcopy__ = lambda self, memo: self
        LambdaSimpleBackend.invoke = _invoke
        _originals["send_to_targets"] = Rule.send_to_targets
        Rule.send_to_targets = _send_to_targets
        _originals["retrier"] = RetrierDecl._eval_body
        RetrierDecl._eval_body = _retrier_eval_body
        _originals["asl_parse"] = AmazonStateLanguageParser.__dict__["parse"].__func__
        AmazonStateLanguageParser.parse = staticmethod(_parse_asl)
        _originals["get_execution_history"] = sfn_responses.StepFunctionResponse.get_execution_history
        sfn_responses.StepFunctionResponse.get_execution_history = _get_execution_history
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
        jsonata_functions.Functions._string = _originals["string"]
        if _originals["parse_declaration"] is not None:
            moto_intrinsics._DECLARATION_BY_VARIABLE_REFERENCE["$parse"] = _originals["parse_declaration"]
        ErrorEqualsDecl._eval_body = _originals["error_equals"]
        ExecutionState._evaluate_with_timeout = _originals["evaluate_with_timeout"]
        ExecutionState._eval_state_output = _originals["eval_state_output"]
        sfn_responses.StepFunctionResponse.send_task_failure = _originals["send_task_failure"]
        StringJSONata._eval_body = _originals["string_jsonata"]
        RetrierDecl._eval_body = _originals["retrier"]
        AmazonStateLanguageParser.parse = staticmethod(_originals["asl_parse"])
        sfn_responses.StepFunctionResponse.get_execution_history = _originals["get_execution_history"]
        _invoker = None
        _installed = False
