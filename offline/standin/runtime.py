"""SageMaker Runtime: InvokeEndpoint against the endpoints of the SageMaker backend, as the K-Means container answers.

The request's payload is parsed per its content type (text/csv, application/json, application/jsonlines,
application/x-recordio-protobuf), every record is assigned to its closest trained centroid, and the
answer is JSON or JSON Lines per the Accept header. A payload the container refuses is a ``ModelError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kmeans
from .exceptions import ModelError, ValidationError
from .models import Variant
from .state import State

MAX_INVOKE_BODY = 6 * 1024 * 1024  # 6,291,456 bytes


@dataclass
class Invocation:
    """InvokeEndpoint's answer: the body, its content type and the variant that served it."""

    body: bytes
    content_type: str
    variant: str


class SageMakerRuntimeBackend:
    """InvokeEndpoint; the endpoints, their state and the faults are the SageMaker backend's."""

    def __init__(self, sagemaker: State):
        self.sagemaker = sagemaker
        self._rng = np.random.default_rng()

    def invoke_endpoint(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str | None = None,
        accept: str | None = None,
        target_variant: str | None = None,
    ) -> Invocation:
        sm = self.sagemaker
        if len(body) > MAX_INVOKE_BODY:
            raise ValidationError(
                "1 validation error detected: Value at 'body' failed to satisfy constraint: Member "
                f"must have length less than or equal to {MAX_INVOKE_BODY}"
            )
        variant, ep_name = self._variant(endpoint_name, target_variant)

        def model_error(status: int, message: str) -> ModelError:
            return ModelError(status, message, endpoint_name=ep_name, region=sm.region, account_id=sm.account_id)

        content_type = content_type or "application/octet-stream"
        ctype, cparams = kmeans.parse_content_type(content_type)
        accept_raw = accept or "application/json"
        accept = kmeans.parse_content_type(accept_raw.split(",")[0])[0]
        if accept in ("*/*", ""):
            accept = "application/json"
        if accept not in ("application/json", "application/jsonlines"):
            raise model_error(
                406,
                f"Accept type {accept_raw} is not supported by the stand-in's K-Means container; "
                "use application/json or application/jsonlines.",
            )
        dim = variant.centroids.shape[1]
        try:
            if ctype == "text/csv":
                label_size = int(cparams.get("label_size", "0"))
                X = kmeans.parse_csv(body, label_size=label_size, feature_dim=None, source="payload")
            elif ctype == "application/json":
                X = _json_instances(body)
            elif ctype == "application/jsonlines":
                X = _jsonlines_instances(body)
            elif ctype == "application/x-recordio-protobuf":
                X = kmeans.parse_recordio_protobuf(body, feature_dim=dim, source="payload")
            else:
                raise model_error(
                    415,
                    f"Content-type {content_type} not supported. Supported content-type is text/csv, "
                    "application/json, application/jsonlines, application/x-recordio-protobuf",
                )
        except kmeans.DataError as exc:
            raise model_error(400, f"Unable to evaluate payload provided: {exc}") from None
        if X.ndim != 2 or len(X) == 0:
            raise model_error(400, "Unable to evaluate payload provided: the payload holds no records")
        if X.shape[1] != dim:
            kind = {"text/csv": "csv", "application/json": "json"}.get(ctype, ctype)
            raise model_error(
                400,
                f"Unable to evaluate payload provided: Feature size of {kind} inference data "
                f"{X.shape[1]} is not consistent with feature size of trained model {dim}",
            )
        idx, dist = kmeans.predict(X, variant.centroids)
        if sm.faults.endpoint_answers_wrong:
            dist = dist * np.float32(2)
        if sm.faults.endpoint_answers_squared:
            dist = dist * dist
        preds = [{"closest_cluster": float(i), "distance_to_cluster": float(d)} for i, d in zip(idx, dist)]
        if accept == "application/jsonlines":
            payload = "\n".join(json.dumps(p) for p in preds).encode("utf-8")
        else:
            payload = json.dumps({"predictions": preds}).encode("utf-8")
        return Invocation(payload, accept, variant.name)

    def _variant(self, endpoint_name: str, target: str | None) -> tuple[Variant, str]:
        """The variant that serves this request (the targeted one, else one drawn by weight) and the endpoint's name."""
        sm = self.sagemaker
        with sm.lock:
            ep = sm.endpoints.get(endpoint_name.lower())
            variants = ep.variants if ep is not None else None
            ep_name = ep.name if ep is not None else endpoint_name
        if not variants:
            raise ValidationError(f"Endpoint {endpoint_name} of account {sm.account_id} not found.")
        if target:
            chosen = [v for v in variants if v.name == target]
            if not chosen:
                raise ValidationError(f"Target variant {target} is not a production variant of endpoint {ep_name}.")
            return chosen[0], ep_name
        weights = np.array([v.weight for v in variants])
        if weights.sum() <= 0:
            raise ValidationError(f"Endpoint {ep_name} has no variant with weight > 0.")
        with sm.lock:
            pick = int(self._rng.choice(len(variants), p=weights / weights.sum()))
        return variants[pick], ep_name


# -- the JSON payloads of the K-Means container ---------------------------------------------------


def _features(value: Any, where: str) -> list[float]:
    if isinstance(value, dict):  # {"values": [...]} (the dense JSON format's data.features)
        value = value.get("values")
    if not isinstance(value, list) or not value:
        raise kmeans.DataError(f"{where}: features must be a non-empty list of numbers")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise kmeans.DataError(f"{where}: {x!r} is not a finite number")
        out.append(float(x))
    return out


def _instance_features(inst: Any, where: str) -> list[float]:
    if isinstance(inst, dict):
        if "features" in inst:
            return _features(inst["features"], where)
        if isinstance(inst.get("data"), dict) and "features" in inst["data"]:
            return _features(inst["data"]["features"], where)
    raise kmeans.DataError(f'{where}: expected {{"features": [...]}}')


def _rows(rows: list[list[float]]) -> np.ndarray:
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise kmeans.DataError(f"records have different numbers of features: {sorted(widths)}")
    return np.array(rows, dtype=np.float64)


def _json_instances(body: bytes) -> np.ndarray:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise kmeans.DataError(f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
        raise kmeans.DataError('expected {"instances": [{"features": [...]}, ...]}')
    return _rows([_instance_features(inst, f"instance {i}") for i, inst in enumerate(doc["instances"])])


def _jsonlines_instances(body: bytes) -> np.ndarray:
    rows = []
    for no, line in enumerate(body.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            inst = json.loads(line)
        except ValueError as exc:
            raise kmeans.DataError(f"line {no}: invalid JSON ({exc})") from None
        rows.append(_instance_features(inst, f"line {no}"))
    if not rows:
        return np.zeros((0, 0))
    return _rows(rows)
