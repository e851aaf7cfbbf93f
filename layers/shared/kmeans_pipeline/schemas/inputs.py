"""One input model per state machine step: the fields its handler needs are required, the optional ones it uses
have defaults, and whatever else the state machine sends is ignored. `statemachine/pipeline.asl.json` builds each
step's Payload; tests/step/test_events.py checks that every Payload and every events/<step>.json fits its model.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, ValidationError, model_validator

from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.base import CamelModel, describe_errors
from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.ranges import RangeItem, TreatItem
from kmeans_pipeline.schemas.results import (
    BestTrainingJob,
    DeploymentAction,
    Evaluation,
    ModelCreated,
    ModelVersion,
    VersionEvent,
)
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.scores import ScoreItem, ScorePlan


class StepInput(CamelModel):
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
            problems = [describe_errors(other)] if other else []
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


class PlanDataInput(RunStepInput):
    """Plan the data ranges."""


class SplitRangeInput(RunStepInput):
    """Split a range (a child of the Distributed Maps "Split the ranges" and "Read ranges again")."""

    range: RangeItem


class MergeRangesInput(RunStepInput):
    """Merge the ranges."""


class TreatRangeInput(RunStepInput):
    """Treat a range (a child of the Distributed Map "Write the treated features")."""

    item: TreatItem


class FinishDatasetInput(RunStepInput):
    """Finish the dataset."""


class StartTuningInput(RunStepInput):
    """Start hyperparameter tuning."""

    dataset: Dataset


class CheckTuningInput(RunStepInput):
    """Check tuning job."""

    tuning_job_name: str


class EvaluateModelInput(RunStepInput):
    """Evaluate model, and Compare with the model serving now (``under_lease``: the comparison made again under the
    deploy lease; ``strictly_better``: an equal score keeps the serving model)."""

    dataset: Dataset
    best: BestTrainingJob
    under_lease: bool | None = None
    strictly_better: bool | None = None


class CreateModelInput(RunStepInput):
    """Create model and endpoint config: from the run's registered (Approved) model version."""

    best: BestTrainingJob
    version: ModelVersion


class DeployLeaseInput(RunStepInput):
    """Take the deploy lease / Release the deploy lease: the execution (the lease's owner), and for taking it, the
    serving model the evaluation compared with and when the execution started."""

    action: Literal["acquire", "release"]
    lease_owner: str = Field(min_length=1)
    evaluated_against: str | None = None
    execution_start: str | None = None
    attempt: int | None = Field(default=None, ge=0)


class DeployEndpointInput(RunStepInput):
    """Deploy to endpoint; the deploy lease this execution holds is renewed (``lease_owner``), and no deployment
    starts without it."""

    endpoint_config_name: str
    lease_owner: str | None = None


class CheckEndpointInput(RunStepInput):
    """Check endpoint (and Check the previous model): the config that should serve, and the one it replaced."""

    endpoint_config_name: str
    previous_endpoint_config_name: str | None = None
    lease_owner: str | None = None


class VerifyEndpointInput(RunStepInput):
    """Verify endpoint: the model deployed, the config it replaced and how it was deployed (to restore on a
    mismatch)."""

    dataset: Dataset
    model: ModelCreated
    previous_endpoint_config_name: str | None = None
    deployment_action: DeploymentAction | None = None


class CleanUpInput(RunStepInput):
    """Clean up superseded models."""


class Approval(StepInput):
    """A person's answer to an approval request (what send-task-success carries)."""

    approved: bool | None = None
    by: str | None = None
    comment: str | None = None


class RecordVersionInput(RunStepInput):
    """Record the model version: register the evaluated model (``registered``), then record what happened to it.
    ``version`` is the registered version (every event but ``registered``)."""

    event: VersionEvent
    evaluation: Evaluation
    dataset: Dataset | None = None
    best: BestTrainingJob | None = None
    version: ModelVersion | None = None
    approval: Approval | None = None
    # Why the run ended as it did (a cause, a verification's or a supersession's reason).
    reason: str | None = None
    execution_id: str | None = None
    endpoint_config_name: str | None = None
    # ``deployed``: the version the endpoint served before (the lease step's), now no longer serving.
    replaced_version: str | None = None


class PlanScoresInput(StepInput):
    """Plan the scoring ranges: the scoring state machine's input, an S3 "Object Created" event from EventBridge
    (``detail``) or, started by hand, ``{"scoreKey": "score/<file>.csv"}``; and the execution's name (its batch's
    folder is ``scores/<name>/<execution>/``)."""

    input: Any = None
    execution: str = Field(min_length=1, max_length=80, pattern=r"^[^/\s]+$")


class ScoreRangeInput(StepInput):
    """Score a range (a child of the Distributed Maps "Score the ranges" and "Score ranges again")."""

    item: ScoreItem


class FinishScoresInput(StepInput):
    """Summarize the scores."""

    plan: ScorePlan
