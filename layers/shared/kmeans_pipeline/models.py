"""Pydantic models for the execution input and every step's input and output (JSON in camelCase).

`RunRequest` is the one schema of what a user may put in an execution's input; the README documents it and
`events/` exercises it.
"""

from __future__ import annotations

from typing import Any, Literal, Self

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
# What a record closest to a small cluster is scored against (scoring.small_clusters, scoring.refer).
SmallClusters = Literal["normal", "anomalous"]


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
        default=None,
        min_length=1,
        description="CSV columns to cluster on; default: the stack's FeatureColumns, else every column.",
    )
    stratify_column: str | None = Field(
        default=None,
        min_length=1,
        description="Column whose values keep their share in train and test (e.g. tranCode); default: a plain seeded random split.",
    )
    test_fraction: float = Field(default=0.2, ge=0.05, le=0.5, description="Share of rows held out for test.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed of the train/test split.")
    max_training_jobs: int | None = Field(
        default=None,
        ge=1,
        le=500,
        description="Training jobs the tuning job may run; default: the stack's MaxTrainingJobs.",
    )
    max_parallel_training_jobs: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Training jobs run at once; default: the stack's MaxParallelTrainingJobs.",
    )
    poll_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
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
        default=None,
        ge=50,
        le=99.99,
        description="Distance percentile above which the report flags a record; default: the stack's AnomalyPercentile (99).",
    )
    small_clusters: SmallClusters | None = Field(
        default=None,
        description="normal (the default): a record is scored against its closest cluster, however small. anomalous: the clusters left once the biggest hold 90% of the training records (or the next is 5 times smaller) are not normal patterns, and a record closest to one is scored against the nearest of the others (CBLOF's rule); for data whose anomalies come in groups of similar records; not for data with a rare but normal kind of record, which it scores against another kind (on the demo's sample, its wire transfers).",
    )
    gate_tolerance_percent: float | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="How much worse (in %) the new model's test MSD may be than the serving model's and still be deployed; default: the stack's GateTolerancePercent (5).",
    )
    approval: bool | None = Field(
        default=None,
        description="Wait for a person's approval (SNS notification with a task token) before deploying; default: the stack's ApprovalRequired.",
    )
    approval_timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_APPROVAL_SECONDS,
        description="How long to wait for the approval before the run ends; default: the stack's ApprovalTimeoutHours.",
    )
    max_tuning_poll_rounds: int = Field(
        default=720, ge=1, description="Status checks before the run stops waiting for tuning (720 x 60 s = 12 h)."
    )
    max_endpoint_poll_rounds: int = Field(
        default=120, ge=1, description="Status checks before the run stops waiting for the endpoint (120 x 60 s = 2 h)."
    )

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
    small_clusters: SmallClusters = "normal"
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


# What the deploy step did: created or updated the endpoint, found this run's deployment under way, found another
# one under way, or started deleting a Failed endpoint.
DeploymentAction = Literal["created", "updated", "inProgress", "busy", "deletingFailed"]


class DeployResult(_Model):
    action: DeploymentAction
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
    return _describe(exc.errors())


def _describe(errors: list) -> str:
    problems = []
    for err in errors:
        where = ".".join(str(part) for part in err["loc"]) or "input"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)


# -- step inputs ----------------------------------------------------------------------------------------------
# One model per state machine step: the fields its handler needs are required, the optional ones it uses have
# defaults, and whatever else the state machine sends is ignored. `statemachine/pipeline.asl.json` builds each
# step's Payload; tests/step/test_events.py checks that every Payload and every events/<step>.json fits its model.


class StepInput(_Model):
    """What every step's input model shares: camelCase JSON, other keys ignored, null counted as absent."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: object) -> object:
        # A value the state machine does not have (e.g. a first deployment's previousEndpointConfigName) may
        # come as null or not at all: both mean absent, so a required field is reported missing either way.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @classmethod
    def from_event(cls, event: object) -> Self:
        """The step's input; a missing field or a wrong one is an InvalidInputError that names it."""
        try:
            return cls.model_validate(event)
        except ValidationError as exc:
            errors = exc.errors()
            missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
            other = [e for e in errors if not (e["type"] == "missing" and len(e["loc"]) == 1)]
            problems = [_describe(other)] if other else []
            if missing:
                problems.insert(0, f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
            raise InvalidInputError(f"Invalid step input: {'; '.join(problems)}") from exc


class ExecutionInfo(StepInput):
    name: str = Field(min_length=1)
    start_time: str = Field(min_length=1)


class ResolveRunInput(StepInput):
    """Resolve run configuration: the execution's input as the user gave it, and the execution's name and start
    (they make the run id, so a retried step names the same resources)."""

    input: Any = None
    execution: ExecutionInfo


class RunStepInput(StepInput):
    """Every step after the first receives the validated run configuration."""

    config: RunConfig


class PrepareDataInput(RunStepInput):
    """Prepare training data."""


class StartTuningInput(RunStepInput):
    """Start hyperparameter tuning."""

    dataset: Dataset


class CheckTuningInput(RunStepInput):
    """Check tuning job."""

    tuning_job_name: str


class EvaluateModelInput(RunStepInput):
    """Evaluate model."""

    dataset: Dataset
    best: BestTrainingJob


class CreateModelInput(RunStepInput):
    """Create model and endpoint config."""

    best: BestTrainingJob


class DeployEndpointInput(RunStepInput):
    """Deploy to endpoint."""

    endpoint_config_name: str


class CheckEndpointInput(RunStepInput):
    """Check endpoint (and Check the previous model): the config that should serve, and the one it replaced."""

    endpoint_config_name: str
    previous_endpoint_config_name: str | None = None


class VerifyEndpointInput(RunStepInput):
    """Verify endpoint: the model deployed, the config it replaced and how it was deployed (to restore on a
    mismatch)."""

    dataset: Dataset
    model: ModelCreated
    previous_endpoint_config_name: str | None = None
    deployment_action: DeploymentAction | None = None


class CleanUpInput(RunStepInput):
    """Clean up superseded models."""
