"""The wire: a prepared botocore request in, the HTTP response SageMaker would send out.

SageMaker speaks JSON 1.1 (the operation in ``X-Amz-Target``, errors as ``{"__type", "message"}``), epoch-second
timestamps and no ``null`` members; SageMaker Runtime speaks REST JSON (``POST /endpoints/<name>/invocations``,
the payload as the raw body, errors as ``{"message"}`` or ``{"Message", ...}`` with extra members). A typed
error from a backend becomes its HTTP error; anything else is a stand-in bug, answered as a 500 that says so.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

from .exceptions import InternalFailure, StandInError, UnknownOperationException, ValidationError

if TYPE_CHECKING:  # pragma: no cover
    from .backend import SageMakerBackend
    from .runtime import SageMakerRuntimeBackend

log = logging.getLogger(__name__)

JSON_11 = "application/x-amz-json-1.1"


class _RawBody(io.BytesIO):
    """What botocore expects as ``AWSResponse.raw``."""

    def stream(self, **_kwargs):
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def make_response(url: str, status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
    headers = dict(headers)
    headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, headers, _RawBody(body))


def respond(
    sagemaker: SageMakerBackend, runtime: SageMakerRuntimeBackend, service: str, operation: str, request
) -> AWSResponse:
    """Answer one request of ``service`` ("sagemaker" or "sagemaker-runtime")."""
    url = request.url
    try:
        if service == "sagemaker-runtime":
            return _invoke(runtime, operation, request)
        body = read_body(request.body)
        params = json.loads(body.decode("utf-8") or "{}") if body else {}
        result = sagemaker.call(operation, params)
        return make_response(url, 200, {"Content-Type": JSON_11}, json.dumps(prune(result)).encode("utf-8"))
    except StandInError as err:
        return error_response(url, service, err)
    except Exception as exc:  # a bug in the stand-in: say so loudly
        log.exception("SageMaker stand-in failed on %s.%s", service, operation)
        err = InternalFailure(f"The SageMaker stand-in failed on {operation}: {exc!r}\n{traceback.format_exc()}")
        return error_response(url, service, err)


def _invoke(runtime: SageMakerRuntimeBackend, operation: str, request) -> AWSResponse:
    url = request.url
    if operation != "InvokeEndpoint":
        raise UnknownOperationException(
            f"The SageMaker Runtime stand-in does not implement {operation}; it implements InvokeEndpoint."
        )
    path = urlsplit(url).path
    parts = path.split("/")
    if len(parts) < 4 or parts[1] != "endpoints" or parts[3] != "invocations":
        raise ValidationError(f"Unexpected InvokeEndpoint path {path}")
    headers = request.headers
    answer = runtime.invoke_endpoint(
        unquote(parts[2]),
        read_body(request.body),
        content_type=header(headers, "Content-Type"),
        accept=header(headers, "Accept"),
        target_variant=header(headers, "X-Amzn-SageMaker-Target-Variant"),
    )
    return make_response(
        url,
        200,
        {"Content-Type": answer.content_type, "x-Amzn-Invoked-Production-Variant": answer.variant},
        answer.body,
    )


def error_response(url: str, service: str, err: StandInError) -> AWSResponse:
    if service == "sagemaker":
        body: dict[str, Any] = {"__type": err.code, "message": err.message}
        ctype = JSON_11
    else:
        body = {"message": err.message} if not err.fields else {"Message": err.message}
        body.update(err.fields)
        ctype = "application/json"
    return make_response(
        url, err.status, {"Content-Type": ctype, "x-amzn-ErrorType": err.code}, json.dumps(body).encode("utf-8")
    )


def prune(d: Any) -> Any:
    """Drop None values recursively (SageMaker omits absent members)."""
    if isinstance(d, dict):
        return {k: prune(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [prune(v) for v in d]
    return d


def header(headers: Any, name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


def read_body(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        pos = body.tell() if hasattr(body, "tell") else None
        data = body.read()
        if pos is not None and hasattr(body, "seek"):
            body.seek(pos)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return bytes(body)
