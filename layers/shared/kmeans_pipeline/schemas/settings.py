"""The stack's configuration, read once per invocation from the environment the template sets."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kmeans_pipeline.errors import InvalidInputError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import TagTypeDef


# Limits of the data step's design (docs/benchmarks.md, "Data at any size"): a range must be read within a
# worker's 15 minutes at the slowest measured rate with a margin, and the input is at most S3's largest object.
MAX_RANGE_KILOBYTES = 2048 << 10
MAX_INPUT_MEGABYTES = 5 * 1024 * 1024
# The data step's unit: it splits the rows that start in each window of this many bytes of an object together
# (data.splitter.WindowSplitter), and its ranges are whole windows.
WINDOW_BYTES = 256 << 10


class StackSettings(BaseModel):
    """Environment variables every step function gets from `template.yaml` Globals."""

    model_config = ConfigDict(frozen=True)

    name_prefix: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,18}$")
    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    data_bucket: str = Field(min_length=3)
    kms_key_arn: str = Field(min_length=1)
    sagemaker_role_arn: str = Field(pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/")
    kmeans_image_uri: str = Field(pattern=r"/kmeans:1$")
    training_instance_type: str = "ml.m5.xlarge"
    hosting_instance_type: str = "ml.m5.large"
    # The stack's k, or "auto": each run chooses k from its data (model.clusters.choose_k).
    default_k: Annotated[int, Field(ge=2, le=1000)] | Literal["auto"] = "auto"
    max_training_jobs: int = Field(default=10, ge=1, le=500)
    max_parallel_training_jobs: int = Field(default=2, ge=1, le=100)
    feature_columns: tuple[str, ...] = ()
    # The largest input a run accepts (the data step's workers each read one range of it).
    max_input_megabytes: int = Field(default=51200, ge=1, le=MAX_INPUT_MEGABYTES)
    # The data step cuts its input into ranges of about this size (in KiB, rounded down to whole windows), one
    # worker each.
    range_kilobytes: int = Field(default=256 << 10, ge=WINDOW_BYTES >> 10, le=MAX_RANGE_KILOBYTES)
    # Training instances per training job; above 1 the training channel is read ShardedByS3Key.
    training_instance_count: int = Field(default=1, ge=1, le=100)
    # The channels are written as objects of about this size.
    shard_megabytes: int = Field(default=128, ge=1, le=10240)
    # Superseded models and endpoint configs kept after a deploy (besides the ones serving or deploying).
    keep_models: int = Field(default=3, ge=1, le=100)
    # Seconds between status checks when a run's input does not say (uploads and the schedule never do).
    default_poll_seconds: int = Field(default=60, ge=0, le=3600)
    # Evaluation, quality gate, approval and the endpoint check.
    anomaly_percentile: float = Field(default=99.0, ge=50, le=99.99)
    gate_tolerance_percent: float = Field(default=5.0, ge=0, le=1000)
    approval_required: bool = False
    approval_timeout_hours: int = Field(default=24, ge=1, le=168)
    endpoint_check_rows: int = Field(default=1000, ge=10, le=100_000)
    resource_tags: dict[str, str] = Field(default_factory=dict)
    # The DynamoDB table of the deploy lease (one execution at a time deploys; aws/lease.py).
    deploy_lease_table: str = ""

    @property
    def range_bytes(self) -> int:
        """RangeKilobytes in bytes, rounded down to whole windows."""
        return (self.range_kilobytes << 10) // WINDOW_BYTES * WINDOW_BYTES

    @field_validator("feature_columns", mode="before")
    @classmethod
    def _split_columns(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(c.strip() for c in value.split(",") if c.strip())
        return value

    @field_validator("resource_tags", mode="before")
    @classmethod
    def _parse_tags(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        """The settings in `environ`, by default the running function's environment (`function_environment`)."""
        env = function_environment() if environ is None else environ
        fields = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(fields)
        except (ValidationError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"The function's environment is not a valid stack configuration: {exc}") from exc

    @property
    def max_input_bytes(self) -> int:
        return self.max_input_megabytes << 20

    def tag_list(self, **extra: str) -> list[TagTypeDef]:
        """Tags in SageMaker's `[{"Key", "Value"}]` form: the stack's tags plus run-specific ones."""
        tags = {**self.resource_tags, **{key: tag_value(value) for key, value in extra.items()}}
        return [{"Key": key, "Value": value} for key, value in tags.items()]


class DriftSettings(BaseModel):
    """The drift check's own environment variables (template.yaml, CheckDriftFunction): its window, what it
    needs to say anything, and the thresholds of its tests (model.drift; docs/usage.md says why these defaults)."""

    model_config = ConfigDict(frozen=True)

    powertools_metrics_namespace: str = Field(min_length=1)
    drift_window_minutes: int = Field(default=60, ge=5, le=10080)
    drift_min_records: int = Field(default=1000, ge=100, le=1_000_000)
    drift_psi_threshold: float = Field(default=0.25, gt=0, le=10)
    drift_flagged_p_value: float = Field(default=1e-4, gt=0, lt=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DriftSettings:
        env = function_environment() if environ is None else environ
        fields = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInputError(f"The drift check's environment is not valid: {exc}") from exc


# The environment variables of the function being invoked. In Lambda every function is its own process, so this
# is os.environ; a host that runs several functions in one process (the offline runner) hands each invocation
# its own variables with `function_environment_set`. A ContextVar is per thread, so concurrent invocations on
# different threads each see their own.
_FUNCTION_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("function_environment", default=None)


def function_environment() -> Mapping[str, str]:
    """The running function's environment variables: os.environ unless its host set them for this invocation."""
    environ = _FUNCTION_ENVIRONMENT.get()
    return os.environ if environ is None else environ


@contextmanager
def function_environment_set(environ: Mapping[str, str]) -> Iterator[None]:
    """Within the block (on this thread), `function_environment()` is `environ`."""
    token = _FUNCTION_ENVIRONMENT.set(environ)
    try:
        yield
    finally:
        _FUNCTION_ENVIRONMENT.reset(token)


# What a function keeps between its invocations (a warm Lambda's process lives on): in Lambda, this module's own
# dict, as each function is its own process; a host that runs several functions in one process gives each function
# its own with `function_caches_set`, so that what one function cached never spares another a call it makes in AWS.
_PROCESS_CACHES: dict[str, dict] = {}
_FUNCTION_CACHES: ContextVar[dict[str, dict] | None] = ContextVar("function_caches", default=None)


def function_cache(name: str) -> dict:
    """The running function's cache called ``name`` (the same dict for all its invocations in one process)."""
    caches = _FUNCTION_CACHES.get()
    return (_PROCESS_CACHES if caches is None else caches).setdefault(name, {})


@contextmanager
def function_caches_set(caches: dict[str, dict]) -> Iterator[None]:
    """Within the block (on this thread), `function_cache(name)` is ``caches[name]``."""
    token = _FUNCTION_CACHES.set(caches)
    try:
        yield
    finally:
        _FUNCTION_CACHES.reset(token)


# A tag value may hold letters, digits, spaces and _ . : / = + - @ (256 at most); an execution name may also
# hold characters such as ( ) ! ' that SageMaker would refuse.
_TAG_VALUE_REFUSED = re.compile(r"[^\w\s.:/=+\-@]")


def tag_value(text: str) -> str:
    return _TAG_VALUE_REFUSED.sub("_", text)[:256]
