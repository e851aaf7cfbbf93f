"""Typed step errors. The state machine retries and catches them by class name, never by message."""


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
