"""What each step after the data step returns (the data step returns a `Dataset`, the first a `RunConfig`)."""

from __future__ import annotations

from typing import Literal

from kmeans_pipeline.schemas.base import CamelModel


class TuningJobStarted(CamelModel):
    tuning_job_name: str
    tuning_job_arn: str
    reused: bool


class BestTrainingJob(CamelModel):
    training_job_name: str
    hyperparameters: dict[str, str]
    test_msd: float
    artifact_uri: str


class TuningStatus(CamelModel):
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


class GateDecision(CamelModel):
    decision: Literal["promote", "keep"]
    reason: str
    new_msd: float
    serving_msd: float | None = None
    tolerance_percent: float
    serving_model: str | None = None


class Evaluation(CamelModel):
    """What the evaluation step found: the report's place and headline, and the gate's decision."""

    report_uri: str
    headline: str
    gate: GateDecision
    evaluated_rows: int
    flagged_share: float
    overall_threshold: float | None


class EndpointVerification(CamelModel):
    passed: bool
    checked_rows: int
    # Rows whose answer differed from offline scoring (0 when none did, or the answers could not be compared).
    differing_rows: int = 0
    error: str | None = None
    cause: str | None = None
    restore: Literal["none", "updating", "deleted", "unknown", "failed"] = "none"
    restored_endpoint_config_name: str | None = None
    # The share of checked rows on which a distance 1 % off would have failed the check (model.tolerance.power).
    power: float | None = None
    warning: str | None = None


class ModelCreated(CamelModel):
    model_name: str
    endpoint_config_name: str
    model_data_url: str


# What the deploy step did: created or updated the endpoint, found this run's deployment under way, found another
# one under way, or started deleting a Failed endpoint.
# "leaseLost": this execution's deploy lease expired and another holds it, so nothing was started.
DeploymentAction = Literal["created", "updated", "inProgress", "busy", "deletingFailed", "leaseLost"]


class DeployResult(CamelModel):
    action: DeploymentAction
    endpoint_name: str
    endpoint_status: str | None
    previous_endpoint_config_name: str | None = None
    cause: str | None = None


class CleanUpResult(CamelModel):
    kept: list[str]
    deleted: list[str]


class EndpointStatus(CamelModel):
    outcome: Literal["running", "inService", "failed"]
    status: str
    endpoint_config_name: str | None
    error: str | None = None
    cause: str | None = None
    failure_reason: str = ""
    # Whether this look renewed the execution's deploy lease (None: the step was given none).
    lease_renewed: bool | None = None


class LeaseStatus(CamelModel):
    """What the deploy lease step found. Acquiring: whether this execution holds the lease now; if not, who does and
    until when; if so, the model serving at that moment and whether the quality gate must compare against it again
    (``compare_again``, with ``tolerance_percent``). Releasing: whether this execution's lease was given back."""

    held: bool
    holder: str | None = None
    expires_at: str | None = None
    serving_model: str | None = None
    compare_again: bool = False
    tolerance_percent: float | None = None
    reason: str = ""
    released: bool | None = None
