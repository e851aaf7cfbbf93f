"""Deploy to endpoint: create it, or update it in place (blue/green); report "busy" while another deployment runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import error_code, sagemaker_call, translate
from kmeans_pipeline.aws.endpoints import TRANSITIONAL, describe_endpoint
from kmeans_pipeline.aws.lease import Lease
from kmeans_pipeline.errors import EndpointUnavailableError
from kmeans_pipeline.schemas.results import DeployResult
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


def _create(
    config: RunConfig, endpoint_config_name: str, settings: StackSettings, sagemaker: SageMakerClient
) -> DeployResult:
    """The first deploy: create the endpoint."""
    name = config.names.endpoint
    try:
        sagemaker.create_endpoint(
            EndpointName=name,
            EndpointConfigName=endpoint_config_name,
            Tags=settings.tag_list(RunId=config.run_id, ExecutionName=config.execution_name),
        )
    except ClientError as exc:
        # Another execution may have created it since we looked: then it is "busy" (or ours, on a retry).
        endpoint = describe_endpoint(sagemaker, name)
        if endpoint is None:
            raise translate(exc, "CreateEndpoint", name) from exc
        ours = endpoint.current == endpoint_config_name
        return DeployResult(
            action="inProgress" if ours else "busy", endpoint_name=name, endpoint_status=endpoint.status
        )
    return DeployResult(action="created", endpoint_name=name, endpoint_status="Creating")


def deploy_endpoint(
    config: RunConfig,
    endpoint_config_name: str,
    settings: StackSettings,
    sagemaker: SageMakerClient,
    lease: Lease | None = None,
) -> DeployResult:
    """Create the endpoint, or update it in place (blue/green); report "busy" while another deploy runs. With a
    deploy lease, renew it first: a lease that expired and was taken means another execution deploys now, and
    nothing is started ("leaseLost")."""
    name = config.names.endpoint
    if lease is not None and not lease.renew():
        return DeployResult(
            action="leaseLost",
            endpoint_name=name,
            endpoint_status=None,
            cause=f"This run's deploy lease of endpoint {name} expired and another execution took it: "
            f"{endpoint_config_name} was not deployed",
        )
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
        return _create(config, endpoint_config_name, settings, sagemaker)

    status, current = endpoint.status, endpoint.current
    if endpoint_config_name in endpoint.configs and status in TRANSITIONAL | {"InService"}:
        # A retry of this step after our own Create/Update went through: nothing more to start.
        return DeployResult(
            action="inProgress",
            endpoint_name=name,
            endpoint_status=status,
            previous_endpoint_config_name=current if current != endpoint_config_name else None,
        )
    if status == "InService":
        try:
            sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=endpoint_config_name)
        except ClientError as exc:
            # Another execution may have started its update since we looked (SageMaker refuses ours with a
            # ValidationException): then it is "busy", as when two first deploys race.
            if error_code(exc) == "ValidationException":
                now = describe_endpoint(sagemaker, name)
                if now is not None and now.status in TRANSITIONAL and endpoint_config_name not in now.configs:
                    return DeployResult(action="busy", endpoint_name=name, endpoint_status=now.status)
            raise translate(exc, "UpdateEndpoint", name) from exc
        return DeployResult(
            action="updated", endpoint_name=name, endpoint_status="Updating", previous_endpoint_config_name=current
        )
    if status in TRANSITIONAL:
        return DeployResult(action="busy", endpoint_name=name, endpoint_status=status)
    if status == "Failed":
        # A Failed endpoint serves nothing and accepts only DeleteEndpoint: delete it, then create it again.
        with sagemaker_call("DeleteEndpoint", name):
            sagemaker.delete_endpoint(EndpointName=name)
        return DeployResult(action="deletingFailed", endpoint_name=name, endpoint_status="Deleting")
    raise EndpointUnavailableError(
        f"Endpoint {name} is {status}: {endpoint.reason or 'no FailureReason'}. "
        "It needs an operator before a deployment can proceed."
    )
