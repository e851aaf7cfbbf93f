"""Take the deploy lease / Release the deploy lease: one execution at a time compares its model with the one serving,
deploys it and checks the endpoint.

Taking it is a conditional write (aws/lease.py); a busy lease says who holds it and until when, and the state
machine waits. Once held, the model serving at that moment is what the new model must beat: when it is not the one
the evaluation compared with (another execution deployed since), or it was deployed by an execution that overlapped
this one, the state machine evaluates again before deploying. Against an overlapping execution's model the tolerance
is 0: both are fresh, so the better one serves (the tolerance is for replacing a model trained earlier, on older
data). Releasing deletes the item only if this execution still holds it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from kmeans_pipeline.aws.lease import Lease
from kmeans_pipeline.aws.serving import serving_model
from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.results import LeaseStatus
from kmeans_pipeline.schemas.run import RunConfig, lease_waits

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def _started(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"executionStart {text!r} is not an ISO 8601 time") from None


def take(
    config: RunConfig,
    lease: Lease,
    evaluated_against: str | None,
    execution_start: str | None,
    sagemaker: SageMakerClient,
    attempt: int = 0,
) -> LeaseStatus:
    busy = lease.acquire()
    if busy is not None:
        waits = lease_waits(config.poll_seconds, config.max_endpoint_poll_rounds)
        return LeaseStatus(
            held=False,
            holder=busy.owner,
            expires_at=busy.until(),
            retry_in_seconds=waits[min(attempt, len(waits) - 1)],
            reason=f"execution {busy.owner} holds the deploy lease of endpoint {lease.endpoint} until {busy.until()}",
        )
    serving = serving_model(sagemaker, lease.endpoint)
    name = serving["modelName"] if serving else None
    started = _started(execution_start)
    created = serving.get("createdAt") if serving else None
    overlapping = bool(created and started and datetime.fromisoformat(created) >= started)
    tolerance = 0.0 if overlapping else config.gate_tolerance_percent
    if overlapping:
        reason = (
            f"{name} serves now, made by an execution that overlapped this one: this run's model must be better "
            "to replace it (tolerance 0%, a tie keeps it)"
        )
    elif name != evaluated_against:
        reason = f"{name or 'no model'} serves now, not {evaluated_against or 'no model'} as when this run evaluated"
    else:
        reason = f"{name or 'no model'} still serves, as when this run evaluated"
    return LeaseStatus(
        held=True,
        serving_model=name,
        serving_model_package_arn=serving.get("modelPackageArn") if serving else None,
        compare_again=overlapping or name != evaluated_against,
        tolerance_percent=tolerance,
        strictly_better=overlapping,
        reason=reason,
    )


def deploy_lease(
    config: RunConfig,
    action: Literal["acquire", "release"],
    lease: Lease,
    evaluated_against: str | None,
    execution_start: str | None,
    sagemaker: SageMakerClient,
    attempt: int = 0,
) -> LeaseStatus:
    """Take the deploy lease (``attempt``: how many tries came before this one) or give it back."""
    if action == "release":
        released = lease.release()
        return LeaseStatus(
            held=False,
            released=released,
            reason="released" if released else "this execution no longer held it (expired, or never taken)",
        )
    return take(config, lease, evaluated_against, execution_start, sagemaker, attempt)
