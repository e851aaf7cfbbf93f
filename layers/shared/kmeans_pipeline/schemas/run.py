"""The execution input a user may give (`RunRequest`) and the validated run configuration every step receives
(`RunConfig`), with the limits that keep an execution inside Step Functions' quotas.

`RunRequest` is the one schema of what a user may put in an execution's input; docs/usage.md documents it and
`events/` exercises it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.dataset import TreatmentKind

# Step Functions history holds 25,000 events and a Wait -> Task -> Choice poll round adds about 9 of them.
EVENTS_PER_POLL_ROUND = 9
MAX_HISTORY_EVENTS = 25_000
# What the rest of an execution needs (steps, retries, choices) is kept out of the polling budget.
MAX_TOTAL_POLL_ROUNDS = (MAX_HISTORY_EVENTS - 1_600) // EVENTS_PER_POLL_ROUND
# Wait loops on the endpoint, each capped by maxEndpointPollRounds (tuning has one, capped by its own).
ENDPOINT_LOOPS = 4
# The state machine's TimeoutSeconds: two days for the tuning and endpoint waits (a run's own waits must end well
# before that, with a clear cause) plus the longest approval wait.
MAX_APPROVAL_SECONDS = 7 * 86_400
POLLING_SECONDS = 172_800
EXECUTION_TIMEOUT_SECONDS = POLLING_SECONDS + MAX_APPROVAL_SECONDS
MAX_TOTAL_WAIT_SECONDS = int(POLLING_SECONDS * 0.9)

# What a record closest to a small cluster is scored against (scoring.small_clusters, scoring.refer,
# model.clusters.judge_small_clusters).
SmallClusters = Literal["auto", "normal", "anomalous"]
# How the z-scored features are weighted in the distance (data.treatment.correlation_weights).
FeatureWeights = Literal["correlation", "equal"]


class RunRequest(CamelModel):
    """What a user may give a run from the console; every field is optional and defaults to the stack's.

    Types are strict, as documented: "3" is not an integer, "yes" not a boolean, true not a number (an integer
    field takes a JSON integer; a number field takes an integer or a decimal).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True)

    data_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Key of the raw CSV in the stack's bucket; default: the newest object under incoming/.",
    )
    k: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description="Number of clusters; default: the stack's DefaultK, whose default (auto) chooses k from the data: the lowest Davies-Bouldin index over k = 8 to 16 (at most the square root of half the training rows), on a seeded sample of 4,000 treated training rows.",
    )
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
    seed: int = Field(
        default=42,
        ge=0,
        le=2**31 - 1,
        description="Seed of the train/test split, of the sample k is chosen from, and of the tuning job (RandomSeed).",
    )
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
    feature_weights: FeatureWeights = Field(
        default="correlation",
        description="How the features count in the distance once z-scored. correlation (the default): each feature times the square root of the sum of its squared correlations with every feature on the sampled training rows, so that what many columns measure together counts more than a column that moves alone (1); equal: every feature 1. Applies only when every numeric column is z-scored.",
    )
    anomaly_percentile: float | None = Field(
        default=None,
        ge=50,
        le=99.99,
        description="Distance percentile above which the report flags a record; default: the stack's AnomalyPercentile (99).",
    )
    small_clusters: SmallClusters = Field(
        default="auto",
        description="What a record closest to a small cluster (those left once the biggest hold 90% of the training records, or the next is 5 times smaller: CBLOF's rule) is scored against. auto (the default): the nearest large cluster, unless one level of a category column explains the small cluster (at least 80% of its training records share the level, and the level has at least 80% of its records in it or makes up 80% of a large cluster): then it is a kind of record, and its own centroid. anomalous: the nearest large cluster, always; for data whose anomalies come in groups and whose rare normal records no category names. normal: its closest cluster, however small.",
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
        # Four loops wait on the endpoint: for the deploy lease, for another deployment, for this one, and for the
        # previous model after a failed endpoint check.
        rounds = self.max_tuning_poll_rounds + ENDPOINT_LOOPS * self.max_endpoint_poll_rounds
        if rounds > MAX_TOTAL_POLL_ROUNDS:
            raise ValueError(
                f"maxTuningPollRounds + {ENDPOINT_LOOPS} x maxEndpointPollRounds must be at most {MAX_TOTAL_POLL_ROUNDS}, "
                f"so that the execution stays under Step Functions' 25,000 history events"
            )
        return self


class S3Location(CamelModel):
    bucket: str
    key: str
    version_id: str | None = None


class ResourceNames(CamelModel):
    tuning_job: str
    model: str
    endpoint_config: str
    endpoint: str


class RunConfig(CamelModel):
    """The validated run configuration every step after the first receives."""

    execution_name: str
    run_id: str
    # "drift": the stack's drift alarm went into ALARM and RetrainOnDrift started this run.
    trigger: Literal["console", "upload", "schedule", "drift"]
    source: S3Location
    # None: the data step chooses k from the data (Dataset.k_choice holds the k every later step uses).
    k: int | None
    k_source: Literal["run", "stack", "data"] = "data"
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
    feature_weights: FeatureWeights = "correlation"
    anomaly_percentile: float = 99.0
    small_clusters: SmallClusters = "auto"
    gate_tolerance_percent: float = 5.0
    approval: bool = False
    approval_timeout_seconds: int = 86400
    endpoint_check_rows: int = 1000


# The deploy lease (aws/lease.py) lasts two poll intervals and this margin past each renewal: the longest a holder's
# steps may take between renewals. A holder that dies blocks the others for at most that long.
LEASE_MARGIN_SECONDS = 3600
# What a holder does under the lease besides waiting on the endpoint (at most twice: for its deployment, and for the
# previous model put back after a failed verification): comparing again and verifying (a Lambda's 16 minutes each at
# most), creating the model, cleaning up and releasing.
HOLDER_STEPS_SECONDS = 2 * 960 + 600


def lease_seconds(poll_seconds: int) -> int:
    """How long a deploy lease lasts from its last renewal: the holder renews it on every status check."""
    return 2 * poll_seconds + LEASE_MARGIN_SECONDS


def lease_waits(poll_seconds: int, rounds: int) -> list[int]:
    """The waits between a waiting run's tries for the deploy lease: doubling from one poll interval (at least 2 s),
    so that a holder that finishes soon is followed soon, and capped as low as lets ``rounds`` tries outlast any
    holder: one that waits twice on the endpoint and does its own steps, or one that died and whose lease expires."""
    longest = max(2 * rounds * poll_seconds + HOLDER_STEPS_SECONDS, lease_seconds(poll_seconds))
    first = max(poll_seconds, 2)

    def waits(cap: int) -> list[int]:
        found, wait = [], first
        for _ in range(rounds):
            found.append(min(wait, cap))
            wait = min(wait * 2, cap)
        return found

    if sum(waits(longest)) < longest:  # too few tries to double up to it: each waits its share
        return [max(first, -(-longest // rounds))] * rounds
    low, high = first, longest
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if sum(waits(middle)) < longest else (low, middle)
    return waits(low)


def check_waits(poll_seconds: int, tuning_rounds: int, endpoint_rounds: int) -> None:
    """The waits a run may ask for must end, with a clear cause, before the execution's own timeout."""
    # Tuning and three endpoint loops wait pollSeconds a round; the deploy lease's loop waits lease_waits.
    total = poll_seconds * (tuning_rounds + (ENDPOINT_LOOPS - 1) * endpoint_rounds)
    total += sum(lease_waits(poll_seconds, endpoint_rounds))
    if total > MAX_TOTAL_WAIT_SECONDS:
        raise InvalidInputError(
            f"Invalid execution input: the waits pollSeconds and the poll rounds ask for (maxTuningPollRounds and "
            f"{ENDPOINT_LOOPS} loops of maxEndpointPollRounds, the deploy lease's with its longer waits) come to "
            f"{total} s, more than {MAX_TOTAL_WAIT_SECONDS} s: the run must give up with a clear cause before the "
            f"execution's {EXECUTION_TIMEOUT_SECONDS} s timeout"
        )
