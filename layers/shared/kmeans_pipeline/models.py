"""Pydantic models for the execution input and every step's input and output (JSON in camelCase).

`RunRequest` is the one schema of what a user may put in an execution's input; the README documents it and
`events/` exercises it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kmeans_pipeline.errors import InvalidInputError

# Step Functions history holds 25,000 events and a Wait -> Task -> Choice poll round adds about 9 of them.
EVENTS_PER_POLL_ROUND = 9
MAX_HISTORY_EVENTS = 25_000
# What the rest of an execution needs (steps, retries, choices) is kept out of the polling budget.
MAX_TOTAL_POLL_ROUNDS = (MAX_HISTORY_EVENTS - 1_600) // EVENTS_PER_POLL_ROUND
# Wait loops on the endpoint, each capped by maxEndpointPollRounds (tuning has one, capped by its own).
ENDPOINT_LOOPS = 3
# The state machine's TimeoutSeconds: two days for the tuning and endpoint waits (a run's own waits must end well
# before that, with a clear cause) plus the longest approval wait.
MAX_APPROVAL_SECONDS = 7 * 86_400
POLLING_SECONDS = 172_800
EXECUTION_TIMEOUT_SECONDS = POLLING_SECONDS + MAX_APPROVAL_SECONDS
MAX_TOTAL_WAIT_SECONDS = int(POLLING_SECONDS * 0.9)


# How a feature column becomes model features (see ColumnTreatment); auto lets the data step decide.
TreatmentKind = Literal["auto", "numeric", "log", "category"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


class RunRequest(_Model):
    """What a user may give a run from the console; every field is optional and defaults to the stack's."""

    data_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Key of the raw CSV in the stack's bucket; default: the newest object under incoming/.",
    )
    k: int | None = Field(default=None, ge=2, le=1000, description="Number of clusters; default: the stack's DefaultK.")
    feature_columns: list[str] | None = Field(
        default=None, min_length=1, description="CSV columns to cluster on; default: the stack's FeatureColumns, else every column."
    )
    stratify_column: str | None = Field(
        default=None, min_length=1, description="Column whose values keep their share in train and test (e.g. tranCode); default: a plain seeded random split."
    )
    test_fraction: float = Field(default=0.2, ge=0.05, le=0.5, description="Share of rows held out for test.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed of the train/test split.")
    max_training_jobs: int | None = Field(
        default=None, ge=1, le=500, description="Training jobs the tuning job may run; default: the stack's MaxTrainingJobs."
    )
    max_parallel_training_jobs: int | None = Field(
        default=None, ge=1, le=100, description="Training jobs run at once; default: the stack's MaxParallelTrainingJobs."
    )
    poll_seconds: int | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds between status checks of the tuning job and the endpoint; default: the stack's DefaultPollSeconds (60).",
    )
    treatments: dict[str, TreatmentKind] = Field(
        default_factory=dict,
        description="How each feature column is turned into model features, by column name: auto (the data step decides from what it sees and records why), numeric, log (log1p, then z-scored; for non-negative heavy-tailed amounts), category (one-hot over the levels in the data); columns not named get auto, or numeric when the run says standardize.",
    )
    standardize: bool | None = Field(
        default=None,
        description="true: z-score every numeric column with the training set's mean and standard deviation; false: raw numbers. Either way, columns not named in treatments are numeric instead of auto.",
    )
    anomaly_percentile: float | None = Field(
        default=None, ge=50, le=99.99, description="Distance percentile above which the report flags a record; default: the stack's AnomalyPercentile (99)."
    )
    gate_tolerance_percent: float | None = Field(
        default=None, ge=0, le=1000, description="How much worse (in %) the new model's test MSD may be than the serving model's and still be deployed; default: the stack's GateTolerancePercent (5)."
    )
    approval: bool | None = Field(
        default=None, description="Wait for a person's approval (SNS notification with a task token) before deploying; default: the stack's ApprovalRequired."
    )
    approval_timeout_seconds: int | None = Field(
        default=None, ge=1, le=MAX_APPROVAL_SECONDS, description="How long to wait for the approval before the run ends; default: the stack's ApprovalTimeoutHours."
    )
    max_tuning_poll_rounds: int = Field(default=720, ge=1, description="Status checks before the run stops waiting for tuning (720 x 60 s = 12 h).")
    max_endpoint_poll_rounds: int = Field(default=120, ge=1, description="Status checks before the run stops waiting for the endpoint (120 x 60 s = 2 h).")

    @model_validator(mode="after")
    def _check(self) -> RunRequest:
        if self.feature_columns is not None and len(set(self.feature_columns)) != len(self.feature_columns):
            raise ValueError("featureColumns lists a column more than once")
        if self.feature_columns is not None:
            unknown = [name for name in self.treatments if name not in self.feature_columns]
            if unknown:
                raise ValueError(f"treatments names {', '.join(unknown)}, which featureColumns does not list")
        # Three loops wait on the endpoint: for another deployment, for this one, and for the previous model
        # after a failed endpoint check.
        rounds = self.max_tuning_poll_rounds + ENDPOINT_LOOPS * self.max_endpoint_poll_rounds
        if rounds > MAX_TOTAL_POLL_ROUNDS:
            raise ValueError(
                f"maxTuningPollRounds + {ENDPOINT_LOOPS} x maxEndpointPollRounds must be at most {MAX_TOTAL_POLL_ROUNDS}, "
                f"so that the execution stays under Step Functions' 25,000 history events"
            )
        return self


class S3Location(_Model):
    bucket: str
    key: str
    version_id: str | None = None


class ResourceNames(_Model):
    tuning_job: str
    model: str
    endpoint_config: str
    endpoint: str


class RunConfig(_Model):
    """The validated run configuration every step after the first receives."""

    execution_name: str
    run_id: str
    trigger: Literal["console", "upload", "schedule"]
    source: S3Location
    k: int
    feature_columns: list[str] | None
    stratify_column: str | None
    test_fraction: float
    seed: int
    max_training_jobs: int
    max_parallel_training_jobs: int
    poll_seconds: int
    max_tuning_poll_rounds: int
    max_endpoint_poll_rounds: int
    names: ResourceNames
    dataset_prefix: str
    model_prefix: str
    report_prefix: str = ""
    treatments: dict[str, TreatmentKind] = Field(default_factory=dict)
    standardize: bool | None = None
    anomaly_percentile: float = 99.0
    gate_tolerance_percent: float = 5.0
    approval: bool = False
    approval_timeout_seconds: int = 86400
    endpoint_check_rows: int = 1000


class SourceObject(_Model):
    bucket: str
    key: str
    version_id: str | None = None
    etag: str
    size: int


class ColumnTreatment(_Model):
    """How one CSV column becomes model features: numeric (x), log (log1p(x)) or category (one-hot over levels).

    A standardised numeric or log column is (base - mean) / std with the training set's mean and std of its base
    value (x, or log1p(x)); a std of 0 counts as 1. A category gives one 0/1 feature per level.
    """

    column: str
    kind: Literal["numeric", "log", "category"]
    standardize: bool = False
    mean: float | None = None
    std: float | None = None
    levels: list[float] | None = None
    decided: Literal["auto", "requested"] = "requested"
    reason: str = ""

    @property
    def width(self) -> int:
        return len(self.levels or []) if self.kind == "category" else 1

    @property
    def feature_names(self) -> list[str]:
        if self.kind == "category":
            return [f"{self.column}={level:g}" for level in self.levels or []]
        return [f"log1p({self.column})" if self.kind == "log" else self.column]


class FeatureTreatment(_Model):
    """The per-column treatments of a dataset, in channel order: what the model's features are."""

    columns: list[ColumnTreatment]

    @property
    def input_columns(self) -> list[str]:
        return [c.column for c in self.columns]

    @property
    def feature_dim(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def feature_names(self) -> list[str]:
        return [name for c in self.columns for name in c.feature_names]

    @property
    def is_identity(self) -> bool:
        """True when the model's features are the CSV's numbers as they are (nothing to transform)."""
        return all(c.kind == "numeric" and not c.standardize for c in self.columns)


class Dataset(_Model):
    """What the data step wrote: S3 URIs and counts, never data."""

    train_uri: str
    test_uri: str
    train_rows: int
    test_rows: int
    train_shards: int = Field(default=1, ge=1, description="Objects the training channel was written as.")
    # How the feature columns became the model's features, and (when they were transformed) where the raw test
    # rows are, in the same order as the transformed ones.
    treatment: FeatureTreatment | None = None
    raw_test_uri: str | None = None
    skipped_blank_lines: int
    feature_columns: list[str]
    feature_dim: int
    content_type: str
    source: SourceObject


class StepInput(_Model):
    """Input of every step after the first: the run configuration plus what earlier steps produced."""

    model_config = ConfigDict(extra="ignore")

    config: RunConfig
    dataset: Dataset | None = None
    tuning_job_name: str | None = None
    best: BestTrainingJob | None = None
    endpoint_config_name: str | None = None
    previous_endpoint_config_name: str | None = None
    model: ModelCreated | None = None
    evaluation: Evaluation | None = None
    deployment_action: str | None = None


class TuningJobStarted(_Model):
    tuning_job_name: str
    tuning_job_arn: str
    reused: bool


class BestTrainingJob(_Model):
    training_job_name: str
    hyperparameters: dict[str, str]
    test_msd: float
    artifact_uri: str


class TuningStatus(_Model):
    """One look at the tuning job. `outcome` drives the state machine's Choice."""

    outcome: Literal["running", "completed", "failed"]
    status: str
    error: str | None = None
    cause: str | None = None
    failure_reason: str = ""
    training_jobs: dict[str, int]
    budget: int
    best_so_far: float | None = None
    best: BestTrainingJob | None = None


class GateDecision(_Model):
    decision: Literal["promote", "keep"]
    reason: str
    new_msd: float
    serving_msd: float | None = None
    tolerance_percent: float
    serving_model: str | None = None


class Evaluation(_Model):
    """What the evaluation step found: the report's place and headline, and the gate's decision."""

    report_uri: str
    headline: str
    gate: GateDecision
    evaluated_rows: int
    flagged_share: float
    overall_threshold: float | None


class EndpointCheck(_Model):
    passed: bool
    checked_rows: int
    error: str | None = None
    cause: str | None = None
    restore: Literal["none", "updating", "deleted", "unknown", "failed"] = "none"
    restored_endpoint_config_name: str | None = None


class ModelCreated(_Model):
    model_name: str
    endpoint_config_name: str
    model_data_url: str


class DeployResult(_Model):
    action: Literal["created", "updated", "inProgress", "busy", "deletingFailed"]
    endpoint_name: str
    endpoint_status: str | None
    previous_endpoint_config_name: str | None = None


class CleanupResult(_Model):
    kept: list[str]
    deleted: list[str]


class EndpointStatus(_Model):
    outcome: Literal["running", "inService", "failed"]
    status: str
    endpoint_config_name: str | None
    error: str | None = None
    cause: str | None = None
    failure_reason: str = ""


StepInput.model_rebuild()


def check_waits(poll_seconds: int, tuning_rounds: int, endpoint_rounds: int) -> None:
    """The waits a run may ask for must end, with a clear cause, before the execution's own timeout."""
    if poll_seconds * (tuning_rounds + ENDPOINT_LOOPS * endpoint_rounds) > MAX_TOTAL_WAIT_SECONDS:
        raise InvalidInputError(
            f"Invalid execution input: pollSeconds x (maxTuningPollRounds + {ENDPOINT_LOOPS} x maxEndpointPollRounds) must be at "
            f"most {MAX_TOTAL_WAIT_SECONDS} s, so that the run gives up with a clear cause before the execution's "
            f"{EXECUTION_TIMEOUT_SECONDS} s timeout"
        )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the field: what a user reads in the execution's cause."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "input"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


def parse_step_input(event: object, *required: str) -> StepInput:
    """The step's input, with the fields it needs (snake_case names) checked present."""
    try:
        step = StepInput.model_validate(event)
    except ValidationError as exc:
        raise InvalidInputError(f"Invalid step input: {describe_validation_error(exc)}") from exc
    missing = [to_camel(name) for name in required if getattr(step, name) is None]
    if missing:
        raise InvalidInputError(f"Invalid step input: {', '.join(missing)} is required")
    return step
