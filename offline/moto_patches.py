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
10. Distributed Map failures: moto swallowed a failed child (the Map succeeded, a null in the child's place). As in
    AWS, the failed items (a failed batch counts each of its items) past ToleratedFailureCount or
    ToleratedFailurePercentage (either, when both are set; any failure when neither is) fail the Map Run with
    States.ExceedToleratedFailureThreshold, which the Map's Retry and Catch see; no further child starts then (those
    running finish). A tolerated failed child's place in the Map's output holds its execution's record (Error,
    Cause, Input, ExecutionArn...), as AWS returns a failed child's result whatever the Transformation.
11. Distributed Map definitions: moto's grammar refuses ItemBatcher, a JSONata ResultWriter (Arguments,
    WriterConfig), a whole-number ToleratedFailurePercentage and ExecutionType EXPRESS. The text its parser reads
    (the state machine keeps its own) has them taken out, 10 read as 10.0 and EXPRESS as STANDARD (EXPRESS children
    run as STANDARD ones offline), and what was taken out is kept on the parsed Map for seams 12 and 13. moto's
    parser also kept its query-language scopes on a class-level list, which a definition refused mid-parse left
    behind (the next JSONPath definition was then read as JSONata) and which concurrent parses shared: each thread
    has its own list, emptied around each parse.
12. ItemBatcher (JSONata: MaxItemsPerBatch, MaxInputBytesPerBatch, BatchInput, each value or {% %} evaluated in the
    Map state): each child's input is {"BatchInput": ..., "Items": [...]} (no BatchInput key without one), at most
    MaxItemsPerBatch items and MaxInputBytesPerBatch bytes of compact JSON (default and maximum 256 KiB; an item
    larger alone in its batch). The ItemSelector shapes each item before it is batched.
13. ResultWriter in JSONata: with Resource arn:aws:states:::s3:putObject and Arguments {Bucket, Prefix}, the results
    are written under <Prefix>/<map run id>/ as SUCCEEDED_0.json, FAILED_0.json and PENDING_0.json (those with
    results) and manifest.json ({DestinationBucket, MapRunArn, ResultFiles: {FAILED, PENDING, SUCCEEDED: [{Key,
    Size}]}}), and the Map's output is {MapRunArn, ResultWriterDetails: {Bucket, Key}} (the manifest's key).
    WriterConfig's Transformation (NONE, the default when writing: each child's execution record; COMPACT: its
    output; FLATTEN: outputs, arrays flattened) and OutputType (JSON array, or JSONL lines) apply; WriterConfig alone
    shapes the Map's output without writing. A write that fails is States.ResultWriterFailed.
14. Concurrency: moto started one thread per item when MaxConcurrency is unset (AWS allows 10,000 children at
    once); at most MAP_RUN_WORKERS children run at once offline (see there why), MaxConcurrency below that still
    bounds them, and each worker runs its children in a loop (moto recursed once per child). Results keep their
    items' places, so this changes no result.
15. The Map Run through the API: DescribeMapRun's item and execution counts as Step Functions keeps them (moto left
    failed children running), ListExecutions with mapRunArn (and statusFilter, maxResults, nextToken) lists the
    children, DescribeExecution describes one; a child's context object is its own execution's (Execution.Id is
    the child's ARN, Execution.Input its input).
16. An ItemReader over s3:listObjectsV2 reads every page of the listing (moto read the first, and failed on an empty
    one).
17. An execution's end: moto set its status (SUCCEEDED, FAILED) before its output (error and cause), so a
    DescribeExecution on another thread could read SUCCEEDED with no output; Step Functions answers an ended
    execution whole. The output, error, cause and stop date are set first, the status last.
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
from moto.stepfunctions.exceptions import InvalidToken, ResourceNotFound
from moto.stepfunctions.parser.api import (
    EvaluationFailedEventDetails,
    ExecutionFailedEventDetails,
    ExecutionStatus,
    HistoryEventType,
)
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsOutcome
from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome
from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJSONata
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
from moto.stepfunctions.parser.asl.component.intrinsic import jsonata as moto_intrinsics
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
    resource_eval_s3 as item_reader_s3,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor import (
    DistributedItemProcessor,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (
    DistributedItemProcessorWorker,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.job import JobPool
from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel.state_parallel import StateParallel
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.program_state import (
    ProgramEnded,
    ProgramError,
    ProgramStopped,
    ProgramTimedOut,
)
from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
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
    parsed = _parse_for_moto(definition)  # a definition that does not parse raises here, every time
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


# -- Distributed Map: what moto's parser refuses, rewritten before the parse -----------------------------------

# Fields of a Map state that moto's grammar refuses, or reads without effect. The definition is rewritten for its
# parser (the state machine keeps its own text), and what was taken out is hung on the parsed Map's iteration
# component, where the seams below read it.
_MAP_EXTRAS = "_offline_distributed_map"
_RESULT_WRITER_RESOURCE = "arn:aws:states:::s3:putObject"


class _MapExtras:
    """What a Map state declares that moto does not keep: its ItemBatcher and JSONata ResultWriter, its children's
    ExecutionType, and which failure tolerances it sets (moto defaults both to 0, set or not)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.item_batcher: dict[str, Any] | None = None
        self.result_writer: dict[str, Any] | None = None
        self.execution_type = "STANDARD"
        self.count_set = "ToleratedFailureCount" in state or "ToleratedFailureCountPath" in state
        self.percentage_set = "ToleratedFailurePercentage" in state or "ToleratedFailurePercentagePath" in state


def _rewrite_for_moto(definition: str) -> tuple[str, dict[tuple[str, ...], _MapExtras]]:
    """The definition as moto's grammar takes it, and each Map state's extras by its path (state names, and a
    Parallel branch's index). Text with nothing to rewrite is returned as it is (moto's own refusals unchanged)."""
    try:
        tree = json.loads(definition)
    except ValueError:
        return definition, {}
    if not isinstance(tree, dict):
        return definition, {}
    found: dict[tuple[str, ...], _MapExtras] = {}
    rewritten = False

    def walk(states: Any, path: tuple[str, ...]) -> None:
        nonlocal rewritten
        if not isinstance(states, dict):
            return
        for name, state in states.items():
            if not isinstance(state, dict):
                continue
            where = (*path, name)
            if state.get("Type") == "Parallel":
                for index, branch in enumerate(state.get("Branches") or []):
                    if isinstance(branch, dict):
                        walk(branch.get("States"), (*where, str(index)))
            if state.get("Type") != "Map":
                continue
            extras = found[where] = _MapExtras(state)
            if "ItemBatcher" in state:
                extras.item_batcher = state.pop("ItemBatcher")
                rewritten = True
            writer = state.get("ResultWriter")
            if isinstance(writer, dict) and ("Arguments" in writer or "WriterConfig" in writer):
                extras.result_writer = state.pop("ResultWriter")
                rewritten = True
            percentage = state.get("ToleratedFailurePercentage")
            if isinstance(percentage, int) and not isinstance(percentage, bool):
                state["ToleratedFailurePercentage"] = float(percentage)  # moto's grammar takes 10.0, not 10
                rewritten = True
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if not isinstance(processor, dict):
                continue
            config = processor.get("ProcessorConfig")
            if isinstance(config, dict) and config.get("ExecutionType") == "EXPRESS":
                config["ExecutionType"] = "STANDARD"  # run as a STANDARD child offline
                extras.execution_type = "EXPRESS"
                rewritten = True
            walk(processor.get("States"), where)

    walk(tree.get("States"), ())
    return (json.dumps(tree) if rewritten else definition), found


def _state_at(program: Any, path: tuple[str, ...]) -> Any:
    states, state, i = program.states.states, None, 0
    while i < len(path):
        state = states.get(path[i])
        i += 1
        if state is None or i == len(path):
            return state
        if isinstance(state, StateMap):
            states = state.iteration_component._states.states
        elif isinstance(state, StateParallel):
            states = state.branches.programs[int(path[i])].states.states
            i += 1
        else:
            return None
    return state


def _attach_map_extras(program: Any, found: dict[tuple[str, ...], _MapExtras]) -> None:
    for path, extras in found.items():
        state = _state_at(program, path)
        if not isinstance(state, StateMap):
            continue
        distributed = isinstance(state.iteration_component, DistributedItemProcessor)
        if not distributed and (extras.item_batcher is not None or extras.result_writer is not None):
            raise ValueError(
                f"Map state '{path[-1]}': ItemBatcher and ResultWriter need ProcessorConfig Mode DISTRIBUTED"
            )
        batcher = extras.item_batcher
        if batcher is not None:
            unknown = set(batcher) - {"MaxItemsPerBatch", "MaxInputBytesPerBatch", "BatchInput"}
            if unknown:  # the *Path forms are JSONPath's; this runner supports the JSONata ItemBatcher
                raise ValueError(f"Map state '{path[-1]}': ItemBatcher fields not supported offline: {sorted(unknown)}")
            if "MaxItemsPerBatch" not in batcher and "MaxInputBytesPerBatch" not in batcher:
                raise ValueError(f"Map state '{path[-1]}': ItemBatcher needs MaxItemsPerBatch or MaxInputBytesPerBatch")
        writer = extras.result_writer
        if writer is not None and "Resource" in writer and writer["Resource"] != _RESULT_WRITER_RESOURCE:
            raise ValueError(f"Map state '{path[-1]}': ResultWriter Resource must be {_RESULT_WRITER_RESOURCE}")
        if distributed:
            setattr(state.iteration_component, _MAP_EXTRAS, extras)


class _ThreadScopes(threading.local):
    def __init__(self) -> None:
        self.scopes: list[Any] = []


_query_language_scopes = _ThreadScopes()


def _parse_for_moto(definition: str) -> tuple[Any, Any]:
    text, found = _rewrite_for_moto(definition)
    _query_language_scopes.scopes.clear()  # whatever a refused parse on this thread left behind
    try:
        program, tree = _originals["asl_parse"](text)
    finally:
        _query_language_scopes.scopes.clear()
    _attach_map_extras(program, found)
    return program, tree


# -- Distributed Map: the Map Run -------------------------------------------------------------------------------

# Children that run at once when the Map sets no MaxConcurrency. AWS starts up to 10,000; moto started a thread per
# item. Offline the handlers run in this process (under the GIL, and one JSONata evaluation at a time), so more
# threads add no speed; but a child that waits (a Wait state, a task token) holds its thread, so a small constant
# rather than the CPU count (2 here). Results do not depend on it: each child's result keeps its item's place.
MAP_RUN_WORKERS = 8

THRESHOLD_CAUSE = "The specified tolerated failure threshold was exceeded"  # AWS's cause for the error below
_BATCH_BYTES_LIMIT = 256 * 1024  # Step Functions' payload limit, and MaxInputBytesPerBatch's maximum
_CHILD = "_offline_child"  # a moto Job's _ChildRun
_CHILDREN = "_offline_children"  # a MapRunRecord's list of _ChildRun
_UNSUCCESSFUL = ("FAILED", "TIMED_OUT", "ABORTED")


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


class _ChildRun:
    """One child workflow execution of a Map Run, as Step Functions reports it."""

    def __init__(self, record: Any, index: int, job_input: Any, items: int) -> None:
        self.index = index
        self.name = str(uuid.uuid4())
        self.state_machine_arn = record.map_state_machine_arn
        self.execution_arn = f"{record.map_state_machine_arn.replace(':stateMachine:', ':execution:')}:{self.name}"
        self.map_run_arn = record.map_run_arn
        self.input = job_input
        self.items = items  # how many of the Map's items it carries (a batch's length)
        self.status = "PENDING"  # not started (the Map Run failed first, or it waits for a worker)
        self.start: datetime.datetime | None = None
        self.stop: datetime.datetime | None = None
        self.output: Any = None
        self.error: str | None = None
        self.cause: str | None = None

    def end(self, status: str, output: Any = None, error: Any = None, cause: Any = None) -> None:
        self.status, self.output, self.error, self.cause = status, output, error, cause
        self.stop = datetime.datetime.now(datetime.UTC)

    def record(self) -> dict[str, Any]:
        """The child as ResultWriter's Transformation NONE writes it (and as a failed child's place in the Map's
        output holds it)."""
        record: dict[str, Any] = {}
        if self.status in _UNSUCCESSFUL:
            record["Cause"] = self.cause or ""
            record["Error"] = self.error or ""
        if self.start is not None:
            record["ExecutionArn"] = self.execution_arn
        record["Input"] = _compact_json(self.input)
        record["InputDetails"] = {"Included": True}
        if self.start is not None:
            record["Name"] = self.name
        if self.status == "SUCCEEDED":
            record["Output"] = _compact_json(self.output)
            record["OutputDetails"] = {"Included": True}
        if self.start is not None:
            record["StartDate"] = _aws_time(self.start)
        record["StateMachineArn"] = self.state_machine_arn
        record["Status"] = self.status
        if self.stop is not None:
            record["StopDate"] = _aws_time(self.stop)
        return record

    def list_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "executionArn": self.execution_arn,
            "stateMachineArn": self.state_machine_arn,
            "name": self.name,
            "status": self.status,
            "startDate": self.start,
            "mapRunArn": self.map_run_arn,
            "itemCount": self.items,
        }
        if self.stop is not None:
            item["stopDate"] = self.stop
        return item

    def describe(self) -> dict[str, Any]:
        described = {**self.list_item(), "input": _compact_json(self.input), "inputDetails": {"included": True}}
        del described["itemCount"]
        if self.status == "SUCCEEDED":
            described["output"] = _compact_json(self.output)
            described["outputDetails"] = {"included": True}
        if self.error is not None:
            described["error"] = self.error
        if self.cause is not None:
            described["cause"] = self.cause
        return described


class _MapRunPool(JobPool):
    """moto's job pool that stops handing out children once the failed items pass the tolerated threshold; the
    Map Run then ends when the children already running have ended."""

    def __init__(self, program: Any, children: list[_ChildRun], exceeded: Callable[[int], bool]) -> None:
        super().__init__(job_program=program, job_inputs=[child.input for child in children])
        for job in self._open_jobs:
            setattr(job, _CHILD, children[job.job_index])
        self._exceeded = exceeded
        self.failed_items = 0
        self.halted = False
        self._handed_out = 0

    def next_job(self) -> Any:
        with self._mutex:
            if self.halted or self._worker_exception is not None or not self._open_jobs:
                return None
            self._handed_out += 1
            return self._open_jobs.pop()

    def close_job(self, job: Any) -> None:
        child = getattr(job, _CHILD)
        with self._mutex:
            if child.status in _UNSUCCESSFUL:
                self.failed_items += child.items
                if self._exceeded(self.failed_items):
                    self.halted = True
        super().close_job(job)

    def _is_terminated(self) -> bool:
        return super()._is_terminated() or (self.halted and len(self._closed_jobs) == self._handed_out)


def _child_worker(self: DistributedItemProcessorWorker) -> None:
    """moto's worker, as a loop: moto recursed once per child it ran, so with few workers a Map Run of many
    thousands of items would near the interpreter's recursion limit (10,000 in this process; 3,000 children on one
    worker still ran)."""
    job = self._job_pool.next_job()
    while job is not None:
        frame = self._env.open_inner_frame()
        try:
            self._eval_job(env=frame, job=job)
        finally:
            self._env.delete_frame(frame)
        self._job_pool.close_job(job)
        job = None if self.stopped() else self._job_pool.next_job()


def _eval_child(self: DistributedItemProcessorWorker, env: Any, job: Any) -> None:
    """Run one child and keep what Step Functions reports of it: its input, status, output or error and cause."""
    child: _ChildRun | None = getattr(job, _CHILD, None)
    if child is None:
        _originals["eval_child"](self, env, job)
        return
    record = self._map_run_record
    items, executions = record.item_counter, record.execution_counter
    for counter in (items, executions):
        counter.pending.offset(-(child.items if counter is items else 1))
        counter.running.count(child.items if counter is items else 1)
    child.status, child.start = "RUNNING", datetime.datetime.now(datetime.UTC)
    try:
        context = env.states.context_object.context_object_data
        context["Map"] = MapData(Item=ItemData(Index=job.job_index, Value=job.job_input))
        env.states.reset(job.job_input)
        env.stack.append(env.states.get_input())
        self._eval_input(env_frame=env)  # the ItemSelector, when the items were not batched
        child.input = env.states.get_input()
        context["Execution"] = {  # the child is an execution of its own
            **context["Execution"],
            "Id": child.execution_arn,
            "Name": child.name,
            "Input": child.input,
            "StartTime": child.start,
        }
        job.job_program.eval(env)
        ended = env.program_state()
        if isinstance(ended, ProgramError):
            error = ended.error or {}
            child.end("FAILED", error=error.get("error"), cause=error.get("cause"))
        elif isinstance(ended, ProgramStopped):
            child.end("ABORTED")
        elif isinstance(ended, ProgramTimedOut):
            child.end("TIMED_OUT", error="States.Timeout")
        else:
            child.end("SUCCEEDED", output=env.states.get_input())
    except EvalTimeoutError:
        child.end("TIMED_OUT", error="States.Timeout")
    except FailureEventException as exc:
        error, cause = exc.extract_error_cause_pair() or (None, None)
        child.end("FAILED", error=error, cause=cause)
    except Exception as exc:  # an interpreter error fails the child, as moto counts it
        child.end("FAILED", error=StatesErrorNameType.StatesRuntime.to_name(), cause=str(exc))
    finally:
        if child.status == "RUNNING":
            child.end("FAILED", error=StatesErrorNameType.StatesRuntime.to_name())
        for counter in (items, executions):
            size = child.items if counter is items else 1
            counter.running.offset(-size)
            {
                "SUCCEEDED": counter.succeeded,
                "FAILED": counter.failed,
                "TIMED_OUT": counter.timed_out,
                "ABORTED": counter.aborted,
            }[child.status].count(size)
        job.job_output = child.output if child.status == "SUCCEEDED" else child.record()


def _evaluate(env: Any, value: Any) -> Any:
    """A JSONata template as Step Functions evaluates one: strings wholly in {% %} are expressions."""
    if isinstance(value, str) and value.startswith("{%") and value.endswith("%}"):
        StringJSONata(expression=value[2:-2].strip()).eval(env=env)
        return env.stack.pop()
    if isinstance(value, dict):
        return {key: _evaluate(env, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate(env, item) for item in value]
    return value


def _map_run_failure(env: Any, error: StatesErrorNameType, cause: str) -> FailureEventException:
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error),
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(
                executionFailedEventDetails=ExecutionFailedEventDetails(error=error.to_name(), cause=cause)
            ),
        )
    )


def _select(env: Any, selector: Any, index: int, item: Any) -> Any:
    """An item through the Map's ItemSelector, as moto's worker applies it (here before the items are batched)."""
    frame = env.open_inner_frame()
    try:
        frame.states.context_object.context_object_data["Map"] = MapData(Item=ItemData(Index=index, Value=item))
        frame.states.reset(input_value=env.states.get_input())
        frame.stack.append(env.states.get_input())
        selector.eval(frame)
        return frame.stack[-1]
    finally:
        env.delete_frame(frame)


def _batch_size_field(env: Any, batcher: dict[str, Any], field: str, maximum: int | None) -> int | None:
    if field not in batcher:
        return None
    value = _evaluate(env, batcher[field])
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or (maximum and value > maximum):
        limit = f" up to {maximum}" if maximum else ""
        raise _map_run_failure(
            env,
            StatesErrorNameType.StatesRuntime,
            f"ItemBatcher's {field} must be an integer from 1{limit}, got {_compact_json(value)}",
        )
    return value


def _batches(env: Any, batcher: dict[str, Any], items: list[Any]) -> list[dict[str, Any]]:
    """The items in batches: {"BatchInput": ..., "Items": [...]} (no BatchInput key without one), each at most
    MaxItemsPerBatch items and MaxInputBytesPerBatch bytes of JSON; an item over the byte limit alone in its batch."""
    per_batch = _batch_size_field(env, batcher, "MaxItemsPerBatch", None)
    max_bytes = _batch_size_field(env, batcher, "MaxInputBytesPerBatch", _BATCH_BYTES_LIMIT) or _BATCH_BYTES_LIMIT
    head = {"BatchInput": _evaluate(env, batcher["BatchInput"])} if "BatchInput" in batcher else {}
    empty = len(_compact_json({**head, "Items": []}).encode())
    batches: list[dict[str, Any]] = []
    current: list[Any] = []
    size = empty
    for item in items:
        item_size = len(_compact_json(item).encode())
        grown = size + item_size + (1 if current else 0)
        if current and ((per_batch is not None and len(current) >= per_batch) or grown > max_bytes):
            batches.append({**head, "Items": current})
            current, size, grown = [], empty, empty + item_size
        current.append(item)
        size = grown
    if current:
        batches.append({**head, "Items": current})
    return batches


def _shape(children: list[_ChildRun], transformation: str) -> list[Any]:
    """The children's results as WriterConfig's Transformation shapes them; an unsuccessful child's is its record
    whatever the transformation (AWS: failed children's results are returned unchanged, as with NONE)."""
    shaped: list[Any] = []
    for child in children:
        if transformation == "NONE" or child.status != "SUCCEEDED":
            shaped.append(child.record())
        elif transformation == "FLATTEN" and isinstance(child.output, list):
            shaped.extend(child.output)
        else:
            shaped.append(child.output)
    return shaped


def _write_results(env: Any, record: Any, writer: dict[str, Any], children: list[_ChildRun]) -> Any:
    """ResultWriter: the Map's output, after writing the results to S3 when the writer names a Resource."""
    config = _evaluate(env, writer.get("WriterConfig") or {})
    exporting = "Resource" in writer
    transformation = config.get("Transformation") or ("NONE" if exporting else "COMPACT")
    output_type = config.get("OutputType") or "JSON"
    if transformation not in ("NONE", "COMPACT", "FLATTEN") or output_type not in ("JSON", "JSONL"):
        raise _map_run_failure(
            env,
            StatesErrorNameType.StatesResultWriterFailed,
            f"WriterConfig: unknown Transformation {transformation!r} or OutputType {output_type!r}",
        )
    if not exporting:
        return _shape(children, transformation)
    arguments = _evaluate(env, writer.get("Arguments") or {})
    bucket, prefix = arguments.get("Bucket"), arguments.get("Prefix") or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    base = f"{prefix}{record.map_run_arn.split(':')[-1]}/"
    groups = {
        "SUCCEEDED": _shape([c for c in children if c.status == "SUCCEEDED"], transformation),
        "FAILED": [c.record() for c in children if c.status in _UNSUCCESSFUL],
        "PENDING": [c.record() for c in children if c.status == "PENDING"],
    }
    s3 = boto_client_for(region=record.map_run_arn.split(":")[3], service="s3")
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    try:
        for status, results in groups.items():
            if not results:
                continue
            if output_type == "JSONL":
                body = "".join(_compact_json(result) + "\n" for result in results).encode()
            else:
                body = _compact_json(results).encode()
            key = f"{base}{status}_0.json"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
        s3.put_object(Bucket=bucket, Key=f"{base}manifest.json", Body=_compact_json(manifest).encode())
    except Exception as exc:  # botocore's ClientError for a missing bucket, for example
        raise _map_run_failure(env, StatesErrorNameType.StatesResultWriterFailed, str(exc)) from exc
    written = [c for c in children if c.status == "SUCCEEDED" or c.status in _UNSUCCESSFUL]
    record.execution_counter.results_written.count(len(written))
    record.item_counter.results_written.count(sum(c.items for c in written))
    return {"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": f"{base}manifest.json"}}


def _map_run(self: Any, env: Any, eval_input: Any) -> None:
    """A Distributed Map's Map Run as Step Functions runs it: batches, a few workers, the tolerated failure
    threshold, the children kept for the Map Run API, the ResultWriter."""
    if not isinstance(self, DistributedItemProcessor):  # the legacy Iterator field: moto's own
        _originals["map_run"](self, env, eval_input)
        return
    items: list[Any] = env.stack.pop()
    extras: _MapExtras = getattr(self, _MAP_EXTRAS, None) or _MapExtras({})
    record = eval_input.map_run_record
    if extras.item_batcher is not None:
        if eval_input.item_selector is not None:
            items = [_select(env, eval_input.item_selector, i, item) for i, item in enumerate(items)]
            eval_input = copy.copy(eval_input)
            eval_input.item_selector = None  # applied to each item already
        inputs = _batches(env, extras.item_batcher, items)
        children = [_ChildRun(record, i, batch, len(batch["Items"])) for i, batch in enumerate(inputs)]
    else:
        children = [_ChildRun(record, i, item, 1) for i, item in enumerate(items)]
    setattr(record, _CHILDREN, children)
    record.item_counter.total.count(len(items))
    record.item_counter.pending.count(len(items))
    record.execution_counter.total.count(len(children))
    record.execution_counter.pending.count(len(children))

    count, percentage = eval_input.tolerated_failure_count, eval_input.tolerated_failure_percentage
    total = len(items)

    def exceeded(failed_items: int) -> bool:
        over_count = failed_items > count
        over_percentage = failed_items * 100 > percentage * total
        if extras.count_set and extras.percentage_set:
            return over_count or over_percentage
        if extras.percentage_set:
            return over_percentage
        return over_count  # ToleratedFailureCount alone, or neither (0: any failure)

    pool = _MapRunPool(self._get_iteration_program(), children, exceeded)
    concurrency = eval_input.max_concurrency or MAP_RUN_WORKERS
    for _ in range(min(concurrency, len(children))):
        self._launch_worker(env=env, eval_input=eval_input, job_pool=pool)
    pool.await_jobs()
    if pool.get_worker_exception() is not None:
        raise pool.get_worker_exception()
    if extras.result_writer is not None:
        result = _write_results(env, record, extras.result_writer, children)
    else:
        result = _shape(children, "COMPACT")
    if pool.halted:
        raise _map_run_failure(env, StatesErrorNameType.StatesExceedToleratedFailureThreshold, THRESHOLD_CAUSE)
    env.stack.append(result)


# -- Distributed Map: the Map Run API, and an S3 listing read whole -------------------------------------------------


def _map_runs(backend: Any) -> Any:
    for execution in backend._get_executions():
        worker = execution.exec_worker
        if worker is not None and worker.env is not None:
            yield from worker.env.map_run_record_pool_manager.get_all()


_CHILDREN_TOKEN = "offline-children:"


def _list_executions(self: Any) -> Any:
    """ListExecutions with mapRunArn: the Map Run's child executions (moto read only stateMachineArn)."""
    map_run_arn = self._get_param("mapRunArn")
    backend = self.stepfunction_backend
    if not map_run_arn or not isinstance(backend, StepFunctionsParserBackend):
        return _originals["list_executions"](self)
    record = next((r for r in _map_runs(backend) if r.map_run_arn == map_run_arn), None)
    if record is None:
        raise ResourceNotFound(map_run_arn)
    status = self._get_param("statusFilter")
    children = [c for c in getattr(record, _CHILDREN, []) if c.start is not None and (not status or c.status == status)]
    children.sort(key=lambda c: c.start, reverse=True)  # newest first, as moto lists executions
    token, offset = self._get_param("nextToken"), 0
    if token:
        if not token.startswith(_CHILDREN_TOKEN) or not token[len(_CHILDREN_TOKEN) :].isdigit():
            raise InvalidToken(f"{token!r} is not a token this listing gave")
        offset = int(token[len(_CHILDREN_TOKEN) :])
    size = self._get_int_param("maxResults") or 100
    page = children[offset : offset + size]
    result: dict[str, Any] = {"executions": [c.list_item() for c in page]}
    if offset + size < len(children):
        result["nextToken"] = f"{_CHILDREN_TOKEN}{offset + size}"
    return sfn_responses.ActionResult(result)


def _describe_execution(self: Any) -> Any:
    """DescribeExecution of a Map Run's child execution (moto knew only the executions it started itself)."""
    arn = self._get_param("executionArn")
    backend = self.stepfunction_backend
    if isinstance(backend, StepFunctionsParserBackend) and ":execution:" in arn and "/" in arn.split(":execution:")[1]:
        for record in _map_runs(backend):
            for child in getattr(record, _CHILDREN, []):
                if child.execution_arn == arn and child.start is not None:
                    return sfn_responses.ActionResult(child.describe())
    return _originals["describe_execution"](self)


def _list_objects_all_pages(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    """An ItemReader over s3:listObjectsV2 reads every page of the listing (moto read the first, and failed on an
    empty one)."""
    s3 = boto_client_for(region=resource_runtime_part.region, service="s3", state_credentials=state_credentials)
    parameters = dict(env.stack.pop())
    contents: list[Any] = []
    while True:
        response = s3.list_objects_v2(**parameters)
        contents += response.get("Contents", [])
        if not response.get("IsTruncated") or not response.get("NextContinuationToken"):
            break
        parameters["ContinuationToken"] = response["NextContinuationToken"]
    env.stack.append(contents)


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
        _originals["query_language_scopes"] = Preprocessor.__dict__["_query_language_per_scope"]
        Preprocessor._query_language_per_scope = property(lambda self: _query_language_scopes.scopes)
        _originals["map_run"] = DistributedIterationComponent._map_run
        DistributedIterationComponent._map_run = _map_run
        _originals["child_worker"] = DistributedItemProcessorWorker.eval
        DistributedItemProcessorWorker.eval = _child_worker
        _originals["eval_child"] = DistributedItemProcessorWorker._eval_job
        DistributedItemProcessorWorker._eval_job = _eval_child
        _originals["list_executions"] = sfn_responses.StepFunctionResponse.list_executions
        sfn_responses.StepFunctionResponse.list_executions = _list_executions
        _originals["describe_execution"] = sfn_responses.StepFunctionResponse.describe_execution
        sfn_responses.StepFunctionResponse.describe_execution = _describe_execution
        _originals["list_objects"] = item_reader_s3.ResourceEvalS3.__dict__["_handle_list_objects_v2"]
        item_reader_s3.ResourceEvalS3._handle_list_objects_v2 = staticmethod(_list_objects_all_pages)
        _originals["reflect_status"] = BaseExecutionWorkerCommunication._reflect_execution_status
        BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status
        _installed = True


def _reflect_execution_status(self: BaseExecutionWorkerCommunication) -> None:
    """Seam 17: an ended execution's output (or error and cause) is there before its status says it ended."""
    execution = self.execution
    state = execution.exec_worker.env.program_state()
    execution.stop_date = datetime.datetime.now(tz=datetime.UTC)
    if isinstance(state, ProgramEnded):
        execution.output = execution.exec_worker.env.states.get_input()
        status = ExecutionStatus.SUCCEEDED
    elif isinstance(state, ProgramStopped):
        status = ExecutionStatus.ABORTED
    elif isinstance(state, ProgramError):
        execution.error, execution.cause = state.error.get("error"), state.error.get("cause")
        status = ExecutionStatus.FAILED
    elif isinstance(state, ProgramTimedOut):
        status = ExecutionStatus.TIMED_OUT
    else:
        raise RuntimeWarning(f"Execution ended with unsupported ProgramState type '{type(state)}'.")
    execution.exec_status = status


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
        Preprocessor._query_language_per_scope = _originals["query_language_scopes"]
        DistributedIterationComponent._map_run = _originals["map_run"]
        DistributedItemProcessorWorker.eval = _originals["child_worker"]
        DistributedItemProcessorWorker._eval_job = _originals["eval_child"]
        sfn_responses.StepFunctionResponse.list_executions = _originals["list_executions"]
        sfn_responses.StepFunctionResponse.describe_execution = _originals["describe_execution"]
        item_reader_s3.ResourceEvalS3._handle_list_objects_v2 = _originals["list_objects"]
        BaseExecutionWorkerCommunication._reflect_execution_status = _originals["reflect_status"]
        _invoker = None
        _installed = False
