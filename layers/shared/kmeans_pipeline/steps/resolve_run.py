"""Resolve run configuration: turn whatever started the execution (console, schedule, S3 upload, the drift alarm)
into one RunConfig."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from kmeans_pipeline.aws.names import NAME_MAX, TUNING_JOB_NAME_MAX, run_id, run_resource_name
from kmeans_pipeline.errors import InvalidInputError, SourceObjectError
from kmeans_pipeline.schemas.base import describe_validation_error
from kmeans_pipeline.schemas.payload import too_large
from kmeans_pipeline.schemas.run import ResourceNames, RunConfig, RunRequest, S3Location, check_waits
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

INCOMING_PREFIX = "incoming/"
S3_OBJECT_CREATED = "Object Created"
SCHEDULED_EVENT = "Scheduled Event"
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"


def resolve_run(
    execution_input: Any,
    execution_name: str,
    execution_start_time: str,
    settings: StackSettings,
    s3: S3Client,
) -> RunConfig:
    """Validate the execution input, whichever of the four shapes it has, and fill in the stack's defaults."""
    if execution_input is None:
        execution_input = {}
    if not isinstance(execution_input, dict):
        raise InvalidInputError(f"The execution input must be a JSON object, not {type(execution_input).__name__}")

    detail_type = execution_input.get("detail-type")
    trigger: Literal["console", "upload", "schedule", "drift"]
    if detail_type == S3_OBJECT_CREATED:
        trigger, request, source = "upload", RunRequest(), _source_from_s3_event(execution_input, settings)
    elif detail_type == SCHEDULED_EVENT:
        trigger, request, source = "schedule", RunRequest(), None
    elif detail_type == ALARM_STATE_CHANGE:
        _check_alarm_event(execution_input)
        trigger, request, source = "drift", RunRequest(), None  # retrain on the newest upload, as the schedule does
    elif detail_type is not None:
        raise InvalidInputError(
            f"Unsupported EventBridge event {detail_type!r}: expected S3 Object Created, a schedule or the drift "
            "alarm's state change"
        )
    else:
        trigger = "console"
        try:
            request = RunRequest.model_validate(execution_input)
        except ValidationError as exc:
            raise InvalidInputError(f"Invalid execution input: {describe_validation_error(exc)}") from exc
        source = S3Location(bucket=settings.data_bucket, key=request.data_key) if request.data_key else None

    if source is None:
        source = S3Location(bucket=settings.data_bucket, key=newest_incoming_key(s3, settings.data_bucket))

    poll_seconds = settings.default_poll_seconds if request.poll_seconds is None else request.poll_seconds
    check_waits(poll_seconds, request.max_tuning_poll_rounds, request.max_endpoint_poll_rounds)
    max_jobs = request.max_training_jobs or settings.max_training_jobs
    max_parallel = min(request.max_parallel_training_jobs or settings.max_parallel_training_jobs, max_jobs)
    rid = run_id(execution_name, execution_start_time)
    tuning_name = run_resource_name(settings.name_prefix, rid, TUNING_JOB_NAME_MAX)
    run_name = run_resource_name(settings.name_prefix, rid, NAME_MAX)
    k, k_source = _k(request.k, settings.default_k)
    config = RunConfig(
        execution_name=execution_name,
        run_id=rid,
        trigger=trigger,
        source=source,
        k=k,
        k_source=k_source,
        feature_columns=request.feature_columns or (list(settings.feature_columns) or None),
        stratify_column=request.stratify_column,
        test_fraction=request.test_fraction,
        seed=request.seed,
        max_training_jobs=max_jobs,
        max_parallel_training_jobs=max_parallel,
        poll_seconds=poll_seconds,
        max_tuning_poll_rounds=request.max_tuning_poll_rounds,
        max_endpoint_poll_rounds=request.max_endpoint_poll_rounds,
        names=ResourceNames(
            tuning_job=tuning_name, model=run_name, endpoint_config=run_name, endpoint=settings.endpoint_name
        ),
        dataset_prefix=f"datasets/{rid}/",
        model_prefix=f"models/{rid}/",
        report_prefix=f"reports/{rid}/",
        treatments=request.treatments,
        standardize=request.standardize,
        feature_weights=request.feature_weights,
        anomaly_percentile=request.anomaly_percentile or settings.anomaly_percentile,
        small_clusters=request.small_clusters,
        gate_tolerance_percent=(
            settings.gate_tolerance_percent
            if request.gate_tolerance_percent is None
            else request.gate_tolerance_percent
        ),
        approval=settings.approval_required if request.approval is None else request.approval,
        approval_timeout_seconds=request.approval_timeout_seconds or settings.approval_timeout_hours * 3600,
        endpoint_check_rows=settings.endpoint_check_rows,
    )
    problem = too_large(config)
    if problem:
        raise InvalidInputError(f"Invalid execution input: {problem}")
    return config


def _field(event: dict, *path: str) -> Any:
    """``event[path[0]][path[1]]...``, or None where a level is missing or is not a JSON object."""
    value: Any = event
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _k(requested: int | None, stack: int | str) -> tuple[int | None, Literal["run", "stack", "data"]]:
    """The run's k, else the stack's DefaultK, else None: the data step chooses it."""
    if requested is not None:
        return requested, "run"
    if isinstance(stack, int):
        return stack, "stack"
    return None, "data"


def _check_alarm_event(event: dict) -> None:
    """A CloudWatch alarm's state change starts a run only when the alarm went into ALARM (the stack's rule
    matches nothing else; a hand-made event is held to the same)."""
    state = _field(event, "detail", "state", "value")
    if event.get("source") != "aws.cloudwatch" or state != "ALARM":
        raise InvalidInputError(
            f"The CloudWatch alarm event starts a run only for an alarm (source aws.cloudwatch) going into ALARM; "
            f"this one is from {event.get('source')!r} with state {state!r}"
        )


def _source_from_s3_event(event: dict, settings: StackSettings) -> S3Location:
    bucket, key = _field(event, "detail", "bucket", "name"), _field(event, "detail", "object", "key")
    version = _field(event, "detail", "object", "version-id")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise InvalidInputError(
            "The S3 Object Created event has no detail.bucket.name or detail.object.key (strings in JSON objects)"
        )
    if version is not None and not isinstance(version, str):
        raise InvalidInputError("The S3 Object Created event's detail.object.version-id is not a string")
    if bucket != settings.data_bucket:
        raise InvalidInputError(f"The upload is in bucket {bucket!r}, not this stack's bucket {settings.data_bucket!r}")
    if key.endswith("/"):
        raise InvalidInputError(f"s3://{bucket}/{key} is a folder marker, not a data file: nothing to train on")
    # Train on exactly the version that was uploaded, even if another upload replaces it meanwhile.
    return S3Location(bucket=bucket, key=key, version_id=version)


def newest_incoming_key(s3: S3Client, bucket: str) -> str:
    """The most recently uploaded object under incoming/ (what a scheduled run retrains on)."""
    newest = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=INCOMING_PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):  # folder markers made by the console
                continue
            if newest is None or obj["LastModified"] > newest["LastModified"]:
                newest = obj
    if newest is None:
        raise SourceObjectError(
            f"No data to train on: s3://{bucket}/{INCOMING_PREFIX} is empty. Upload a CSV there or give dataKey."
        )
    return newest["Key"]
