"""Every name a run can fail with, in one place: the typed step errors (the state machine retries and catches them
by class name, never by message) and the failures that are not exceptions (a step's result names them, or the state
machine's own Fail states do). docs/operations.md's failure table lists exactly ``error_names()``
(tests/infra/test_error_names.py checks it against the state machine and the steps)."""

from __future__ import annotations

import sys
from enum import StrEnum


class PipelineError(Exception):
    """Base class: a step failed for a reason the execution's cause should state."""


class InvalidInputError(PipelineError):
    """The execution input (or the stack's configuration) is not a valid run configuration."""


class DataValidationError(PipelineError):
    """The raw CSV cannot be used for training; the message names the line and column."""


class SourceObjectError(PipelineError):
    """The raw data object cannot be read (missing key, wrong bucket, access denied)."""


class SageMakerThrottlingError(PipelineError):
    """SageMaker throttled a request after the client's own retries; the state machine retries the step."""


class SageMakerUnavailableError(PipelineError):
    """SageMaker answered with a server error (5xx) after the client's own retries; retried like throttling."""


class SageMakerLimitExceededError(PipelineError):
    """An account quota (ResourceLimitExceeded) refused a Create: not retried, the cause quotes SageMaker."""


class SageMakerRequestError(PipelineError):
    """SageMaker refused a request; the message quotes SageMaker's own error."""


class ResourceConflictError(PipelineError):
    """A resource with this run's name exists but was not made by this run's request."""


class EndpointUnavailableError(PipelineError):
    """The endpoint is in a state no deployment can proceed from (for example UpdateRollbackFailed)."""


class ModelArtifactError(PipelineError):
    """A model artifact is not the MXNet NDArray list K-Means writes; the message says what is wrong and where."""


class EndpointAnswerError(PipelineError):
    """The endpoint's answers disagree with the model's offline scoring; the previous config is put back."""


class ModelChanged(PipelineError):
    """Batch scoring: the endpoint served another model than the one the batch was planned with (one batch, one
    model); the summary names the range that saw it."""


class Failure(StrEnum):
    """Failures that are not exceptions. A check step returns them in its result's ``error`` and the state
    machine's Fail state passes it through; the last four only the state machine writes."""

    NO_BEST_TRAINING_JOB = "NoBestTrainingJob"
    TUNING_JOB_STOPPED = "TuningJobStopped"
    TUNING_JOB_FAILED = "TuningJobFailed"
    ENDPOINT_MISSING = "EndpointMissing"
    ENDPOINT_SUPERSEDED = "EndpointSuperseded"
    ENDPOINT_UPDATE_ROLLED_BACK = "EndpointUpdateRolledBack"
    ENDPOINT_FAILED = "EndpointFailed"
    ENDPOINT_VERIFICATION_FAILED = "EndpointVerificationFailed"
    # Written only in statemachine/pipeline.asl.json:
    POLL_LIMIT_EXCEEDED = "PollLimitExceeded"
    MODEL_REJECTED = "ModelRejected"
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"
    STEP_FAILED = "StepFailed"  # a Step Functions error (States.*) ended a step after its retries


def step_errors() -> list[type[PipelineError]]:
    """The exception classes defined here: what a step raises and the state machine sees by class name."""
    module = sys.modules[__name__]
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, PipelineError)
        and value is not PipelineError
        and value.__module__ == __name__
    ]


def error_names() -> list[str]:
    """Every name a run can fail with: the step errors' class names, then the failures that are not exceptions."""
    return [error.__name__ for error in step_errors()] + [failure.value for failure in Failure]
