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
    """What the evaluation step found: the report's place and headline, and the gate's decision. Compared again
    under the deploy lease: ``report_uri`` is still the report the version registered (never rewritten), and
    ``comparison_uri`` the final comparison, whose gate and headline these are."""

    report_uri: str
    headline: str
    gate: GateDecision
    evaluated_rows: int
    flagged_share: float
    overall_threshold: float | None
    comparison_uri: str | None = None


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
    # The registered version the model is made from.
    model_package_arn: str | None = None


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
    # The registered version the serving model was made from (None: none serves, or not made from a version): the
    # version this run's model replaces if it is deployed.
    serving_model_package_arn: str | None = None
    compare_again: bool = False
    tolerance_percent: float | None = None
    # Against a model an overlapping execution deployed, this run's must be strictly better: an equal one is kept
    # out rather than deployed again (an endpoint update, with its second fleet, for nothing).
    strictly_better: bool = False
    # Not held: how long to wait before trying again (schemas/run.py lease_waits).
    retry_in_seconds: int | None = None
    reason: str = ""
    released: bool | None = None


class DriftCheck(CamelModel):
    """What one drift check found (the check function's output and log line); ``drift`` is None when nothing
    could be said (no model serves, its report is missing, or too few records were scored in the window)."""

    endpoint: str
    window_start: str
    window_end: str
    model: str | None = None
    report_uri: str | None = None
    # Objects read, of those listed in the window; ``sample`` says how they were chosen when not all were read.
    objects: int = 0
    listed_objects: int = 0
    sample: str | None = None
    records: int = 0
    flagged: int = 0
    flagged_share: float | None = None
    expected_flagged_share: float | None = None
    flagged_p_value: float | None = None
    distance_psi: float | None = None
    column_psi: dict[str, float] = {}
    drift: bool | None = None
    findings: list[str] = []
    watch: list[str] = []
    metrics: list[str] = []


# What happened to a run's model, as the registry records it (steps/record_version.py).
VersionEvent = Literal["registered", "approved", "rejected", "timedOut", "deployed", "kept", "superseded", "failed"]


class ModelVersion(CamelModel):
    """The run's model as a version of the stack's model registry group."""

    model_package_arn: str
    version: int
    status: Literal["Approved", "Rejected", "PendingManualApproval"]
    description: str
