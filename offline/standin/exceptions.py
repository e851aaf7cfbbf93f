"""The errors the stand-in answers with: one class per SageMaker / SageMaker Runtime error code.

``responses.py`` turns a raised ``StandInError`` into the HTTP error SageMaker sends (its ``code`` as
``__type`` / ``x-amzn-ErrorType``, its ``status``, its ``fields`` as extra members of the body), so botocore
raises the ``ClientError`` a client of real SageMaker would see.
"""

from __future__ import annotations

from typing import Any


class StandInError(Exception):
    """An error response: ``code`` and ``status`` per class, the message and extra body members per error."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str, **fields: Any):
        super().__init__(f"{self.code}: {message}")
        self.message = message
        self.fields = fields


# -- SageMaker ----------------------------------------------------------------------------------


class ValidationException(StandInError):
    code = "ValidationException"


class ResourceNotFound(StandInError):
    code = "ResourceNotFound"


class ResourceInUse(StandInError):
    code = "ResourceInUse"


class ResourceLimitExceeded(StandInError):
    code = "ResourceLimitExceeded"


class ThrottlingException(StandInError):
    """botocore's retry modes retry this code."""

    code = "ThrottlingException"


class UnknownOperationException(StandInError):
    code = "UnknownOperationException"


class InternalFailure(StandInError):
    """A bug in the stand-in, reported as a server error."""

    code = "InternalFailure"
    status = 500


# -- SageMaker Runtime --------------------------------------------------------------------------


class ValidationError(StandInError):
    """SageMaker Runtime's validation code (SageMaker's own is ``ValidationException``)."""

    code = "ValidationError"


class ModelError(StandInError):
    """The model container answered InvokeEndpoint with a client error (HTTP 424 with the container's status)."""

    code = "ModelError"
    status = 424

    def __init__(
        self, original_status: int, original_message: str, *, endpoint_name: str, region: str, account_id: str
    ):
        log_group = f"/aws/sagemaker/Endpoints/{endpoint_name}"
        super().__init__(
            f'Received client error ({original_status}) from primary with message "{original_message}". See '
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logEventViewer:group={log_group} in account {account_id} for more information.",
            ErrorCode="CLIENT_ERROR_FROM_MODEL",
            OriginalStatusCode=original_status,
            OriginalMessage=original_message,
            LogStreamArn=f"arn:aws:logs:{region}:{account_id}:log-group:{log_group}",
        )


# -- not an API error ---------------------------------------------------------------------------


class JobFailure(Exception):
    """Asynchronous work (a training job, an endpoint deployment) fails with exactly this FailureReason."""
