"""What an endpoint is doing, read with one DescribeEndpoint: the one place that reads that answer's fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmeans_pipeline.aws.clients import describe_or_none, sagemaker_call

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

# Statuses in which SageMaker is still working on the endpoint: wait, don't touch.
TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


@dataclass(frozen=True)
class EndpointView:
    """One DescribeEndpoint answer: the config serving, the one an update is moving to, the status and the reason."""

    name: str
    status: str
    current: str | None
    pending: str | None
    reason: str

    @property
    def configs(self) -> set[str]:
        """The endpoint configs the endpoint serves or is moving to."""
        return {name for name in (self.current, self.pending) if name}


def describe_endpoint(sagemaker: SageMakerClient, name: str) -> EndpointView | None:
    """The endpoint as it is now, or None when it does not exist."""
    with sagemaker_call("DescribeEndpoint", name):
        endpoint = describe_or_none(sagemaker.describe_endpoint, EndpointName=name)
    if endpoint is None:
        return None
    return EndpointView(
        name=name,
        status=endpoint["EndpointStatus"],
        current=endpoint.get("EndpointConfigName"),
        pending=(endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
        reason=endpoint.get("FailureReason") or "",
    )
