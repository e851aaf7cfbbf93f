"""Check endpoint: one look at the endpoint; success means InService on this run's endpoint config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmeans_pipeline.aws.endpoints import TRANSITIONAL, describe_endpoint
from kmeans_pipeline.aws.lease import Lease
from kmeans_pipeline.errors import Failure
from kmeans_pipeline.schemas.results import EndpointStatus
from kmeans_pipeline.schemas.run import RunConfig

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def check_endpoint(
    config: RunConfig,
    endpoint_config_name: str,
    sagemaker: SageMakerClient,
    previous_config_name: str | None = None,
    lease: Lease | None = None,
) -> EndpointStatus:
    """One look at the endpoint after this run's deployment started, renewing the run's deploy lease if it has one
    (the deployment is under way either way: a lost lease is for the endpoint check to notice).

    `previous_config_name` is what the endpoint served before this run updated it: back on it means rolled back;
    on a third config (and no FailureReason) means a later execution's deployment replaced this one.
    """
    renewed = lease.renew() if lease is not None else None
    return _look(config, endpoint_config_name, sagemaker, previous_config_name).model_copy(
        update={"lease_renewed": renewed}
    )


def _look(
    config: RunConfig, endpoint_config_name: str, sagemaker: SageMakerClient, previous_config_name: str | None
) -> EndpointStatus:
    name = config.names.endpoint
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
        return EndpointStatus(
            outcome="failed",
            status="Missing",
            endpoint_config_name=None,
            error=Failure.ENDPOINT_MISSING,
            cause=f"Endpoint {name} no longer exists (deleted while the deployment of {endpoint_config_name} ran)",
        )
    status, current, pending, reason = endpoint.status, endpoint.current, endpoint.pending, endpoint.reason
    if status == "Updating" and current == endpoint_config_name and pending not in {None, endpoint_config_name}:
        # Ours serves (it reached InService) while a later execution's update runs: this run is done.
        return EndpointStatus(outcome="inService", status=status, endpoint_config_name=current)
    if status in TRANSITIONAL:
        return EndpointStatus(outcome="running", status=status, endpoint_config_name=current)
    if status == "InService" and current == endpoint_config_name:
        return EndpointStatus(outcome="inService", status=status, endpoint_config_name=current)
    if status == "InService" and not reason and current != previous_config_name:
        return EndpointStatus(
            outcome="failed",
            status=status,
            endpoint_config_name=current,
            error=Failure.ENDPOINT_SUPERSEDED,
            cause=f"Endpoint {name} serves {current}, deployed by another execution after this run's "
            f"{endpoint_config_name}: this run's model is not the one serving",
        )
    # InService on the old config: the update was rolled back (the old model serves); anything else failed.
    rolled_back = status == "InService"
    what = (
        f"still serves {current}: the update to {endpoint_config_name} was rolled back"
        if rolled_back
        else f"is {status}"
    )
    return EndpointStatus(
        outcome="failed",
        status=status,
        endpoint_config_name=current,
        error=Failure.ENDPOINT_UPDATE_ROLLED_BACK if rolled_back else Failure.ENDPOINT_FAILED,
        failure_reason=reason,
        cause=f"Endpoint {name} {what}: " + (reason or "SageMaker gave no FailureReason"),
    )
