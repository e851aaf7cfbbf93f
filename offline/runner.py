"""Run the deployed workflow offline: the real ASL and handlers in an in-process moto, SageMaker stood in.

with OfflineAWS() as aws:
    aws.upload(Path("transactions.csv"), "incoming/transactions.csv")
    result = aws.run({"dataKey": "incoming/transactions.csv", "pollSeconds": 1}, name="demo-1")
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from kmeans_pipeline.schemas.settings import function_caches_set, function_environment_set
from offline import moto_patches
from offline.stack import ACCOUNT_ID, Deployed, StackBuilder
from offline.standin import Faults, SageMakerStandIn, Timing

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# StartExecution's limits (the Step Functions API reference), which moto's interpreter does not check: an input of
# at most 262,144 bytes of standard JSON (no NaN or Infinity), a name of 1-80 characters without whitespace,
# brackets, wildcards, these special characters or control characters.
EXECUTION_INPUT_MAX_BYTES = 262_144
EXECUTION_NAME_MAX = 80
_NAME_FORBIDDEN = frozenset('<>{}[]?*"#%\\^|~`$&,;:/')


def execution_name_problem(name: str) -> str | None:
    """Why Step Functions would refuse ``name`` as an execution name (None if it would not)."""
    if not 1 <= len(name) <= EXECUTION_NAME_MAX:
        return f"it has {len(name)} characters; an execution name has 1 to {EXECUTION_NAME_MAX}"
    bad = sorted({c for c in name if c in _NAME_FORBIDDEN or c.isspace() or ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F})
    if bad:
        return (
            f"it holds {' '.join(repr(c) for c in bad)}; an execution name may not hold whitespace, < > {{ }} [ ], "
            '? *, " # % \\ ^ | ~ ` $ & , ; : / or control characters'
        )
    return None


def start_execution_problem(execution_input: Any, name: str) -> ClientError | None:
    """The error StartExecution answers for this input and name, if any (moto's interpreter checks neither)."""
    problem = execution_name_problem(name)
    if problem:
        code = "ValidationException" if len(name) > EXECUTION_NAME_MAX else "InvalidName"
        return ClientError({"Error": {"Code": code, "Message": f"Invalid Name: {name!r}: {problem}"}}, "StartExecution")
    try:
        text = json.dumps(execution_input, allow_nan=False)
    except ValueError as exc:
        return ClientError(
            {
                "Error": {
                    "Code": "InvalidExecutionInput",
                    "Message": f"The provided JSON input data is not valid: {exc}",
                }
            },
            "StartExecution",
        )
    size = len(text.encode())
    if size > EXECUTION_INPUT_MAX_BYTES:
        return ClientError(
            {
                "Error": {
                    "Code": "ValidationException",
                    "Message": f"1 validation error detected: Value at 'input' failed to satisfy constraint: Member "
                    f"must have length less than or equal to {EXECUTION_INPUT_MAX_BYTES} (it has {size:,} bytes)",
                }
            },
            "StartExecution",
        )
    return None


# The process's own variables (credentials and region for boto3 and moto, Powertools' offline switches): the
# same for every function, as Lambda's reserved variables are. A function's template variables never go here.
_ENV = {
    "AWS_ACCESS_KEY_ID": "offline",
    "AWS_SECRET_ACCESS_KEY": "offline",
    "AWS_SESSION_TOKEN": "offline",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_DEV": "0",
}


@dataclass(frozen=True)
class Invocation:
    """The function whose handler runs on this thread (`function` its name, `logical_id` its template id)."""

    function: str
    logical_id: str


# Handlers of different functions run at once on the executions' threads; each thread knows whose handler it runs.
_INVOCATION: ContextVar[Invocation | None] = ContextVar("offline_invocation", default=None)


def current_invocation() -> Invocation | None:
    return _INVOCATION.get()


_POOL_SUBMIT = ThreadPoolExecutor.submit


def _submit_in_caller_context(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """In Lambda a function's threads live in its own process; here they share one with every function. A task a
    handler hands to a thread pool runs in the handler's context: as its function (its environment, caches and
    role, for the IAM checks), as it would in AWS."""
    return _POOL_SUBMIT(self, contextvars.copy_context().run, fn, *args, **kwargs)


class _OneClientAtATimeSession(boto3.session.Session):
    """boto3's default session, which every handler offline shares (in Lambda each function has its own
    process). A session is not thread-safe, its clients are: clients are made one at a time."""

    _lock = threading.Lock()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super().client(*args, **kwargs)


@dataclass
class StateEvent:
    """A state entered or exited, for progress display."""

    kind: str  # "entered" | "exited"
    state: str
    elapsed: float
    output: Any = None


@dataclass
class ExecutionResult:
    name: str
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    seconds: float
    states: list[StateEvent] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def state_outputs(self, state: str) -> list[Any]:
        return [e.output for e in self.states if e.kind == "exited" and e.state == state]

    def state_seconds(self) -> dict[str, float]:
        """Total seconds spent in each state, summed over its visits."""
        totals: dict[str, float] = {}
        entered: dict[str, float] = {}
        for event in self.states:
            if event.kind == "entered":
                entered[event.state] = event.elapsed
            elif event.state in entered:
                totals[event.state] = totals.get(event.state, 0.0) + event.elapsed - entered.pop(event.state)
        return totals


class LogSink:
    """Where the handlers' log lines go offline (CloudWatch Logs in AWS): kept in memory, newest last."""

    def __init__(self, limit: int = 20_000) -> None:
        self.lines: list[tuple[str, str]] = []  # (function name, line)
        self.limit = limit
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if text.strip():
            invocation = current_invocation()
            with self._lock:
                self.lines.append((invocation.function if invocation else "", text.rstrip("\n")))
                del self.lines[: -self.limit]
        return len(text)

    def flush(self) -> None:
        pass


LOG_SINK = LogSink()


class InjectedFault(Exception):
    """A Lambda failure the runner injects; `error_type` is the error name Step Functions sees."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class FakeLambdaContext:
    """What Powertools reads from a Lambda context."""

    def __init__(self, function_name: str, memory: int, timeout: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = os.urandom(16).hex()
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "offline"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def approval_token(event: dict) -> str | None:
    """The task token of an approval request, read from its notification as a person would read it."""
    details = event.get("taskScheduledEventDetails") or {}
    if event.get("type") != "TaskScheduled" or "waitForTaskToken" not in details.get("resource", ""):
        return None
    message = json.loads(details.get("parameters") or "{}").get("Message", "")
    match = re.search(r"--task-token (\S+)", message)
    return match.group(1) if match else None


class OfflineAWS:
    """The stack deployed into moto, with the SageMaker stand-in; use as a context manager."""

    def __init__(
        self,
        root: Path = ROOT,
        stack_name: str = "kmeans-offline",
        faults: Faults | None = None,
        timing: Timing | None = None,
        parameters: dict[str, str] | None = None,
        event_triggers: bool = False,
    ) -> None:
        self.root = root
        self.stack_name = stack_name
        self.standin = SageMakerStandIn(
            region=REGION, account_id=ACCOUNT_ID, faults=faults or Faults(), timing=timing or Timing()
        )
        self.parameters = parameters or {}
        self.event_triggers = event_triggers  # uploads under incoming/ and the schedule start executions
        self._saved_env: dict[str, str | None] = {}
        self._mock = mock_aws(
            config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        )
        self.stack: Deployed | None = None
        self.invocations: dict[str, int] = {}
        self.step_events: dict[str, list[Any]] = {}  # logical id -> every event its handler received
        self.api_calls: list[tuple[str, str, str, dict]] = []  # (logical id, service, operation, params)
        self.crashes: dict[str, list[str]] = {}  # logical id -> errors its next invocations die with
        self._books = threading.Lock()  # guards the four records above (never held while a handler runs)
        self._handlers: dict[str, Callable] = {}  # function name -> its handler
        self._environments: dict[str, MappingProxyType] = {}  # function name -> its environment variables
        # function name -> what it keeps between invocations (function_cache): its own, as its own process has in
        # Lambda, so that one function's cache never spares another a call (and hides a permission it lacks).
        self._caches: dict[str, dict[str, dict]] = {}
        self.builder: StackBuilder | None = None
        self._clients: dict[str, Any] = {}  # service -> the runner's own client (clients are thread-safe)
        self._clients_lock = threading.Lock()
        self._alarm_states: dict[str, str] = {}  # alarm name -> its state as the runner evaluated it
        self.notifications: list[dict] = []  # what the alarms published to their topics

    # -- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> OfflineAWS:
        for key, value in _ENV.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        boto3.DEFAULT_SESSION = None
        self._mock.start()
        ThreadPoolExecutor.submit = _submit_in_caller_context  # type: ignore[method-assign]
        try:
            self.standin.install()
            # Before the deployment: creating the state machine parses its definition too (seam 8).
            moto_patches.install(self._invoke, event_triggers=self.event_triggers)
            self.builder = StackBuilder(self.root, self.stack_name, REGION, self.parameters)
            self.stack = self.builder.deploy()
            # Every AWS call a handler makes (through boto3's default session, as handlers do), for IAM checks.
            boto3.DEFAULT_SESSION = _OneClientAtATimeSession()
            boto3.DEFAULT_SESSION.events.register("provide-client-params", self._record_call)
            self._load_functions()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._clients.clear()
        ThreadPoolExecutor.submit = _POOL_SUBMIT  # type: ignore[method-assign]
        moto_patches.uninstall()
        self.standin.uninstall()
        self._mock.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        boto3.DEFAULT_SESSION = None

    def _load_functions(self) -> None:
        """Every function's environment (its template variables, as Lambda gives them) and handler.

        Handlers read their variables through `function_environment()`, which `_invoke` points at the function's
        own for the invocation: nothing of one function's environment is in the process's os.environ while
        handlers run. A module's import is its cold start: what runs there (Powertools' Logger reads its
        POWERTOOLS_* variables) sees the function's variables in os.environ. So all handlers are imported here,
        one at a time, before any execution starts, and os.environ is restored after each."""
        for name, spec in self.stack.functions.items():
            environment = {**_ENV, **{key: str(value) for key, value in spec["env"].items()}}
            self._environments[name] = MappingProxyType(environment)
            saved = {key: os.environ.get(key) for key in environment}
            os.environ.update(environment)
            try:
                # Powertools binds its log stream at import: the sink collects what CloudWatch would.
                with contextlib.redirect_stdout(LOG_SINK):
                    module = importlib.import_module(spec["module"])
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
            self._handlers[name] = getattr(module, spec["attribute"])

    # -- the stack's resources ------------------------------------------------------------------------------
    @property
    def bucket(self) -> str:
        return self.stack.outputs["DataBucketName"]

    @property
    def kms_key_arn(self) -> str:
        return self.stack.outputs["KmsKeyArn"]

    @property
    def endpoint_name(self) -> str:
        return self.stack.outputs["EndpointName"]

    def deploy_lease(self) -> dict | None:
        """The deploy lease's item as the table holds it now ({"owner", "expiresAt"}), or None when nobody holds it."""
        table = self.stack.physical.get("DeployLeaseTable")
        if table is None:
            return None
        items = self.client("dynamodb").scan(TableName=table, ConsistentRead=True).get("Items", [])
        if not items:
            return None
        item = items[0]
        return {"owner": item["owner"]["S"], "expiresAt": int(item["expiresAt"]["N"])}

    def client(self, service: str) -> Any:
        """The runner's client for `service` (made once per stack: `wait` polls the history twenty times a second)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(service, region_name=REGION)
            return self._clients[service]

    def upload(self, source: Path | bytes, key: str) -> None:
        """Put an object in the stack's bucket as a user would (SSE-KMS, as the bucket policy demands)."""
        body = source.read_bytes() if isinstance(source, Path) else source
        self.client("s3").put_object(
            Bucket=self.bucket, Key=key, Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_arn
        )

    # -- Lambda seam ----------------------------------------------------------------------------------------
    def _record_call(self, model: Any, params: dict, **_: Any) -> None:
        # A call belongs to the handler running on its thread; the runner's own calls (polling, uploads) to none.
        invocation = current_invocation()
        if invocation is not None:
            with self._books:
                self.api_calls.append(
                    (invocation.logical_id, model.service_model.service_name, model.name, dict(params))
                )

    def _invoke(self, function_name: str, event: Any) -> Any:
        """Run a function's handler on the calling thread, with the function's own environment; handlers of
        several executions run at once, as separate Lambda invocations do."""
        spec = self.stack.functions[function_name]
        logical_id = spec["logical_id"]
        with self._books:
            self.invocations[logical_id] = self.invocations.get(logical_id, 0) + 1
            self.step_events.setdefault(logical_id, []).append(event)
        token = _INVOCATION.set(Invocation(function_name, logical_id))
        try:
            caches = self._caches.setdefault(function_name, {})
            with function_environment_set(self._environments[function_name]), function_caches_set(caches):
                result = self._handlers[function_name](
                    event, FakeLambdaContext(function_name, spec["memory"], spec["timeout"])
                )
            with self._books:
                pending = self.crashes.get(logical_id)
                crash = pending.pop(0) if pending else None
            if crash:  # the work is done, but the invocation dies before it can answer
                raise InjectedFault(crash, f"injected: {function_name} died after doing its work")
            return result
        finally:
            _INVOCATION.reset(token)

    def fire_schedule(self) -> None:
        """Deliver a "Scheduled Event" to the stack's scheduled rules, as EventBridge does when one is due."""
        from moto.events.models import events_backends

        backend = events_backends[ACCOUNT_ID][REGION]
        for rule in backend.event_buses["default"].rules.values():
            # The retraining schedule; the drift check's schedule is OfflineAWS.check_drift (moto delivers nothing
            # to a Lambda target). A disabled rule receives nothing (moto_patches).
            if rule.scheduled_expression and any(t["Arn"] == self.stack.state_machine_arn for t in rule.targets):
                event = eventbridge_event("Scheduled Event", "aws.events", rule.arn, {}, datetime.now(UTC))
                rule.send_to_targets(event)

    def check_drift(self, window: tuple[datetime, datetime] | None = None) -> dict:
        """Run the drift check as its schedule does (a "Scheduled Event" now), or on an explicit [start, end)
        window as an operator would; returns its output. moto delivers no event to a Lambda target."""
        name = self.stack.physical["CheckDriftFunction"]
        if window is None:
            # EventBridge's time has whole seconds: the next one, so that what was just scored is in the window.
            when = datetime.now(UTC) + timedelta(seconds=1)
            event: dict = eventbridge_event(
                "Scheduled Event", "aws.events", self.stack.arns["DriftCheckRule"], {}, when
            )
        else:
            event = {"windowStart": _iso(window[0]), "windowEnd": _iso(window[1])}
        answer = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read())
        if answer.get("FunctionError"):
            raise RuntimeError(f"the drift check failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    def evaluate_alarms(self, now: datetime | None = None) -> list[AlarmChange]:
        """Evaluate the stack's metric alarms as CloudWatch does, which moto never does: the latest
        EvaluationPeriods periods of the metric's statistic against the threshold (DatapointsToAlarm of them
        breaching), missing data as TreatMissingData says. A change of state notifies the alarm's actions (SNS,
        in CloudWatch's message format, kept in ``notifications``) and emits the "CloudWatch Alarm State Change"
        event, which the runner delivers to the enabled rules that match it (a state machine target starts an
        execution with the native event, as EventBridge does). Callers may not send aws.* events through
        PutEvents, so only the runner can."""
        now = now or datetime.now(UTC)
        cloudwatch = self.client("cloudwatch")
        changes = []
        for alarm in cloudwatch.describe_alarms()["MetricAlarms"]:
            state, reason = _alarm_state(cloudwatch, alarm, now)
            old = self._alarm_states.get(alarm["AlarmName"], "INSUFFICIENT_DATA")
            if state is None or state == old:
                continue
            self._alarm_states[alarm["AlarmName"]] = state
            cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason)
            change = AlarmChange(alarm["AlarmName"], old, state, reason)
            message = {
                "AlarmName": alarm["AlarmName"],
                "AlarmDescription": alarm.get("AlarmDescription"),
                "AWSAccountId": ACCOUNT_ID,
                "NewStateValue": state,
                "NewStateReason": reason,
                "StateChangeTime": now.isoformat(),
                "Region": REGION,
                "AlarmArn": alarm["AlarmArn"],
                "OldStateValue": old,
                "Trigger": {
                    "MetricName": alarm["MetricName"],
                    "Namespace": alarm["Namespace"],
                    "Statistic": alarm["Statistic"].upper(),
                    "Period": alarm["Period"],
                    "EvaluationPeriods": alarm["EvaluationPeriods"],
                    "ComparisonOperator": alarm["ComparisonOperator"],
                    "Threshold": alarm["Threshold"],
                    "TreatMissingData": alarm.get("TreatMissingData", "missing"),
                    "Dimensions": [{"name": d["Name"], "value": d["Value"]} for d in alarm.get("Dimensions", [])],
                },
            }
            actions = alarm.get("AlarmActions", []) if state == "ALARM" else alarm.get("OKActions", [])
            for topic in actions:
                subject = f'{state}: "{alarm["AlarmName"]}" in {REGION}'
                self.client("sns").publish(TopicArn=topic, Subject=subject[:100], Message=json.dumps(message))
                self.notifications.append({"topic": topic, "subject": subject, "message": message})
            detail = {
                "alarmName": alarm["AlarmName"],
                "state": {"value": state, "reason": reason, "timestamp": now.isoformat()},
                "previousState": {"value": old},
                "configuration": {"description": alarm.get("AlarmDescription", "")},
            }
            event = eventbridge_event("CloudWatch Alarm State Change", "aws.cloudwatch", alarm["AlarmArn"], detail, now)
            change.executions = self._deliver(event)
            changes.append(change)
        return changes

    def _deliver(self, event: dict) -> list[str]:
        """Start the state machine for each enabled rule that matches the event; returns the executions."""
        from moto.events.models import events_backends

        started = []
        for rule in events_backends[ACCOUNT_ID][REGION].event_buses["default"].rules.values():
            if rule.state != "ENABLED" or rule.scheduled_expression or not rule.event_pattern.matches_event(event):
                continue
            for target in rule.targets:
                if target["Arn"] == self.stack.state_machine_arn:
                    started.append(self.start(event, f"drift-{os.urandom(6).hex()}"))
        return started

    def state_output(self, arn: str, state: str, timeout: float = 60.0) -> Any:
        """The output of `state` the first time it is left in a running execution, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self._history(arn):
                details = event.get("stateExitedEventDetails")
                if details and details["name"] == state:
                    return json.loads(details["output"])
            time.sleep(0.05)
        raise TimeoutError(f"{state} was not left within {timeout} s")

    def executions(self, state_machine: str = "PipelineStateMachine") -> list[dict]:
        """Every execution of one of the stack's state machines (by logical id), oldest first."""
        assert self.stack is not None
        pages = (
            self.client("stepfunctions")
            .get_paginator("list_executions")
            .paginate(stateMachineArn=self.stack.state_machines[state_machine])
        )
        return sorted((e for page in pages for e in page["executions"]), key=lambda e: e["startDate"])

    def crash_after(self, logical_id: str, error_type: str = "Runtime.ExitError", times: int = 1) -> None:
        """Make the function's next `times` invocations die after their work (e.g. "Sandbox.Timedout")."""
        with self._books:
            self.crashes.setdefault(logical_id, []).extend([error_type] * times)

    # -- executions -----------------------------------------------------------------------------------------
    def start(self, execution_input: Any, name: str, state_machine: str = "PipelineStateMachine") -> str:
        """StartExecution of a state machine of the stack (by logical id: the pipeline, or ScoringStateMachine),
        refused (ClientError) where Step Functions refuses it: a bad name, input that is not standard JSON, or
        input over 256 KiB."""
        problem = start_execution_problem(execution_input, name)
        if problem is not None:
            raise problem
        assert self.stack is not None
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.stack.state_machines[state_machine], name=name, input=json.dumps(execution_input)
        )["executionArn"]

    def wait(
        self,
        arn: str,
        on_state: Callable[[StateEvent], None] | None = None,
        timeout: float = 600.0,
        approve: bool | None = None,
    ) -> ExecutionResult:
        """Follow an execution to its end. ``approve`` answers approval requests as a person would: with the
        command from the notification (True approves, False rejects; None leaves them waiting)."""
        sfn = self.client("stepfunctions")
        started = time.monotonic()
        seen = 0
        events: list[dict] = []
        states: list[StateEvent] = []
        while True:
            description = sfn.describe_execution(executionArn=arn)
            events.extend(self._events_after(arn, events[-1]["id"] if events else 0))
            for event in events[seen:]:
                if approve is not None and (token := approval_token(event)):
                    answer = {"approved": approve, "by": "offline runner"}
                    if not approve:
                        answer["comment"] = "rejected by --reject"
                    sfn.send_task_success(taskToken=token, output=json.dumps(answer))
                state_event = _state_event(event, events[0]["timestamp"])
                if state_event is not None:
                    states.append(state_event)
                    if on_state:
                        on_state(state_event)
            seen = len(events)
            if description["status"] in TERMINAL:
                break
            if time.monotonic() - started > timeout:
                sfn.stop_execution(executionArn=arn, error="OfflineTimeout", cause=f"no end after {timeout} s")
                raise TimeoutError(f"execution {arn} did not end within {timeout} s")
            time.sleep(0.05)
        output = json.loads(description["output"]) if description.get("output") else None
        error, cause = description.get("error"), description.get("cause")
        if description["status"] != "SUCCEEDED" and error is None:
            failed = next((e for e in reversed(events) if e["type"] == "ExecutionFailed"), None)
            if failed:
                details = failed.get("executionFailedEventDetails", {})
                error, cause = details.get("error"), details.get("cause")
        return ExecutionResult(
            name=description["name"],
            arn=arn,
            status=description["status"],
            output=output,
            error=error,
            cause=cause,
            seconds=(description.get("stopDate", description["startDate"]) - description["startDate"]).total_seconds(),
            states=states,
            history=events,
        )

    def run(
        self,
        execution_input: Any,
        name: str,
        on_state: Callable[[StateEvent], None] | None = None,
        timeout: float = 600.0,
        approve: bool | None = None,
        state_machine: str = "PipelineStateMachine",
    ) -> ExecutionResult:
        started = self.start(execution_input, name, state_machine)
        return self.wait(started, on_state=on_state, timeout=timeout, approve=approve)

    def approval_requests(self, arn: str) -> list[dict]:
        """The approval notifications an execution sent: {"subject", "message", "token"}."""
        found = []
        for event in self._history(arn):
            token = approval_token(event)
            if token:
                parameters = json.loads(event["taskScheduledEventDetails"]["parameters"])
                found.append(
                    {"subject": parameters.get("Subject"), "message": parameters.get("Message"), "token": token}
                )
        return found

    def _events_after(self, arn: str, last_id: int) -> list[dict]:
        """The execution's events newer than event `last_id`, oldest first: read newest first, in pages that start
        small (a poll mostly finds a few new events) and grow, only as far back as `last_id` (ids count up from 1)."""
        sfn = self.client("stepfunctions")
        newer: list[dict] = []
        token = None
        size = 8
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, reverseOrder=True, maxResults=size, **({"nextToken": token} if token else {})
            )
            size = min(size * 4, 1000)
            for event in page["events"]:
                if event["id"] <= last_id:
                    return newer[::-1]
                newer.append(event)
            token = page.get("nextToken")
            if not token:
                return newer[::-1]

    def _history(self, arn: str) -> list[dict]:
        sfn = self.client("stepfunctions")
        events, token = [], None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            events.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                return events

    def sagemaker_resources(self, names: dict) -> dict[str, list[str]]:
        """The SageMaker resources that exist under a run's names (`names` from its run configuration)."""
        sm = self.client("sagemaker")
        found: dict[str, list[str]] = {}
        tuning = names["tuningJob"]
        try:
            sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
            summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=tuning, MaxResults=100
            )["TrainingJobSummaries"]
            found["tuningJob"] = [tuning]
            found["trainingJobs"] = sorted(s["TrainingJobName"] for s in summaries)
        except ClientError:
            found["tuningJob"], found["trainingJobs"] = [], []
        checks = {
            "model": (sm.describe_model, "ModelName", names["model"]),
            "endpointConfig": (sm.describe_endpoint_config, "EndpointConfigName", names["endpointConfig"]),
            "endpoint": (sm.describe_endpoint, "EndpointName", names["endpoint"]),
        }
        for kind, (describe, field_name, name) in checks.items():
            try:
                describe(**{field_name: name})
                found[kind] = [name]
            except ClientError:
                found[kind] = []
        return found


@dataclass
class AlarmChange:
    """An alarm's change of state as the runner evaluated it, and the executions its event started."""

    alarm: str
    old: str
    new: str
    reason: str
    executions: list[str] = field(default_factory=list)


_COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def eventbridge_event(detail_type: str, source: str, resource: str, detail: dict, when: datetime) -> dict:
    """An event as EventBridge delivers it (its time in whole seconds, UTC)."""
    return {
        "version": "0",
        "id": os.urandom(16).hex(),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT_ID,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource],
        "detail": detail,
    }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _alarm_state(cloudwatch: Any, alarm: dict, now: datetime) -> tuple[str | None, str]:
    """(the state CloudWatch would put the alarm in, why); None: missing data that leaves it as it is."""
    period, periods = int(alarm["Period"]), int(alarm["EvaluationPeriods"])
    stats = cloudwatch.get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=alarm["MetricName"],
        Dimensions=alarm.get("Dimensions", []),
        StartTime=now - timedelta(seconds=period * periods),
        EndTime=now + timedelta(seconds=1),
        Period=period,
        Statistics=[alarm["Statistic"]],
    )["Datapoints"]
    values = [p[alarm["Statistic"]] for p in sorted(stats, key=lambda p: p["Timestamp"])][-periods:]
    threshold, compare = float(alarm["Threshold"]), _COMPARE[alarm["ComparisonOperator"]]
    if not values:
        treat = alarm.get("TreatMissingData", "missing")
        reason = f"no datapoints in the last {periods} period(s) of {period} s (TreatMissingData {treat})"
        return {"notBreaching": "OK", "breaching": "ALARM"}.get(treat), reason
    breaching = [v for v in values if compare(v, threshold)]
    needed = int(alarm.get("DatapointsToAlarm") or periods)
    shown = ", ".join(f"{v:g}" for v in values)
    if len(breaching) >= needed:
        return (
            "ALARM",
            f"Threshold Crossed: {len(breaching)} datapoint(s) [{shown}] {alarm['ComparisonOperator']} {threshold:g}",
        )
    return "OK", f"Threshold not crossed: datapoint(s) [{shown}] against {threshold:g}"


def _state_event(event: dict, start: Any) -> StateEvent | None:
    elapsed = (event["timestamp"] - start).total_seconds()
    if "stateEnteredEventDetails" in event:
        return StateEvent("entered", event["stateEnteredEventDetails"]["name"], elapsed)
    if "stateExitedEventDetails" in event:
        details = event["stateExitedEventDetails"]
        output = details.get("output")
        try:
            output = json.loads(output) if output else None
        except json.JSONDecodeError:
            pass
        return StateEvent("exited", details["name"], elapsed, output)
    return None
