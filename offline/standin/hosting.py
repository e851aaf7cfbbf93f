"""An endpoint's background work: deploy a configuration (Creating/Updating) and finish a deletion.

A deployment loads every variant's ``model.tar.gz`` from S3 as the K-Means container would; on success the
endpoint serves the new variants, a failed update keeps the old fleet serving (blue/green), a failed
creation leaves the endpoint Failed.
"""

from __future__ import annotations

import copy
import logging

import botocore.exceptions

from .exceptions import JobFailure
from .models import Endpoint, Variant, clip_reason, now
from .ndarray import read_model_tar_gz
from .state import State
from .validators import parse_s3_uri

log = logging.getLogger(__name__)


def deploy(state: State, ep: Endpoint, config_name: str, generation: int, fault: str | None, update: bool) -> None:
    """Creating/Updating -> InService (or Failed / back to the old config)."""
    if state.sleep(state.timing.endpoint_seconds):
        return
    reason = None
    variants = None
    if fault:
        reason = fault
    else:
        try:
            variants = _load_variants(state, config_name)
        except JobFailure as exc:
            reason = str(exc)
        except Exception as exc:  # pragma: no cover - a bug
            log.exception("deploying endpoint %s crashed", ep.name)
            reason = f"InternalServerError: stand-in crashed: {exc!r}"
    with state.lock:
        if state.endpoints.get(ep.name.lower()) is not ep or ep.generation != generation:
            return
        ep.modified = now()
        ep.pending_config = ep.pending_since = None
        if reason is None:
            ep.status = "InService"
            ep.failure_reason = None
            ep.config_name = config_name
            ep.variants = variants
            ep.variant_specs = [v.spec for v in variants]
        elif update:  # blue/green: the old fleet keeps serving
            ep.status = "InService"
            ep.failure_reason = clip_reason(reason)
        else:
            ep.status = "Failed"
            ep.failure_reason = clip_reason(reason)


def finish_delete(state: State, ep: Endpoint, generation: int) -> None:
    state.sleep(state.timing.endpoint_delete_seconds)
    with state.lock:
        if state.endpoints.get(ep.name.lower()) is ep and ep.generation == generation:
            state.forget(state.endpoints, ep)


def _load_variants(state: State, config_name: str) -> list[Variant]:
    """Load every variant's model as the K-Means container would (raises JobFailure)."""
    with state.lock:
        config = state.endpoint_configs.get(config_name.lower())
        if config is None:
            raise JobFailure(f'Could not find endpoint configuration "{state.arn("endpoint-config", config_name)}".')
        specs = copy.deepcopy(config.request["ProductionVariants"])
        models = {}
        for spec in specs:
            model = state.models.get(str(spec.get("ModelName")).lower())
            if model is None:
                raise JobFailure(f'Could not find model "{state.arn("model", str(spec.get("ModelName")))}".')
            models[spec["VariantName"]] = model.serving_container()
    variants = []
    for spec in specs:
        container = models[spec["VariantName"]]
        url = container.get("ModelDataUrl") or ((container.get("ModelDataSource") or {}).get("S3DataSource") or {}).get(
            "S3Uri"
        )
        health = (
            f"The primary container for production variant {spec['VariantName']} did not pass "
            "the ping health check. Please check CloudWatch logs for this endpoint."
        )
        if not url:
            raise JobFailure(f"{health} (The K-Means container found no model: ModelDataUrl is not set.)")
        bucket, key = parse_s3_uri(url, "ModelDataUrl")
        try:
            data = state.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError:
            raise JobFailure(
                f'Failed to download model data for container "container_1" from URL: "{url}". '
                "Please ensure that there is an object located at the URL and that the role "
                "passed to CreateModel has permissions to download the object."
            ) from None
        try:
            centroids = read_model_tar_gz(data)
        except ValueError as exc:
            raise JobFailure(f"{health} (The K-Means container could not load {url}: {exc})") from None
        variants.append(Variant(spec, container.get("Image", ""), centroids))
    return variants
