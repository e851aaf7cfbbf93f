"""boto3 clients created on demand, and SageMaker errors turned into the pipeline's typed errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from kmeans_pipeline.errors import (
    SageMakerLimitExceededError,
    SageMakerRequestError,
    SageMakerThrottlingError,
    SageMakerUnavailableError,
)

# botocore's standard mode retries throttling itself (3 attempts; the standard AWS_MAX_ATTEMPTS variable
# changes that); what still fails reaches the state machine's Retry as SageMakerThrottlingError.
CLIENT_CONFIG = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=60)

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)

SERVER_ERROR_CODES = frozenset({"InternalFailure", "InternalServerError", "ServiceUnavailable", "InternalError"})


def client(service: str) -> Any:
    """A client for `service` with the pipeline's retry settings; called inside handlers, never at import."""
    make: Any = boto3.client  # one function for every service: the stubs' per-service overloads do not apply
    return make(service, config=CLIENT_CONFIG)


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_message(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Message", str(exc))


@contextmanager
def sagemaker_call(operation: str, resource: str) -> Iterator[None]:
    """Translate a SageMaker ClientError raised inside the block into a typed pipeline error."""
    try:
        yield
    except ClientError as exc:
        raise translate(exc, operation, resource) from exc


def translate(exc: ClientError, operation: str, resource: str) -> Exception:
    code = error_code(exc)
    text = f"SageMaker {operation} for {resource} failed with {code}: {error_message(exc)}"
    if code in THROTTLING_CODES:
        return SageMakerThrottlingError(text)
    if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500 or code in SERVER_ERROR_CODES:
        return SageMakerUnavailableError(text)
    if code == "ResourceLimitExceeded":
        return SageMakerLimitExceededError(text)
    return SageMakerRequestError(text)


def create_or_reuse(
    create: Callable[[], Any],
    describe: Callable[[], Mapping[str, Any] | None],
    operation: str,
    resource: str,
) -> tuple[Mapping[str, Any], bool]:
    """Run an idempotent Create: reuse what exists under this run's name (a retried step), else create it.

    Returns (description, reused). `describe` returns None when the resource does not exist.
    """
    existing = describe()
    if existing is not None:
        return existing, True
    try:
        create()
    except ClientError as exc:
        # A concurrent retry may have created it between our describe and create.
        existing = describe()
        if existing is not None:
            return existing, True
        raise translate(exc, operation, resource) from exc
    created = describe()
    if created is None:
        raise SageMakerRequestError(f"SageMaker {operation} for {resource} succeeded but it cannot be described")
    return created, False


def describe_or_none(call: Any, **kwargs: Any) -> dict | None:
    """Describe a model, endpoint config or endpoint; None when it does not exist.

    SageMaker answers a missing model, config or endpoint with ValidationException ("Could not find ...").
    """
    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) in {"ValidationException", "ResourceNotFound"}:
            return None
        raise
