"""Create model and endpoint config, Deploy to endpoint, Check endpoint: make the model servable, put it on the
endpoint (create, or update in place), and watch the endpoint until it serves this run's config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kmeans_pipeline.aws import create_or_reuse, describe_or_none, error_code, sagemaker_call, translate
from kmeans_pipeline.endpoints import describe_endpoint
from kmeans_pipeline.errors import EndpointUnavailableError, ResourceConflictError
from kmeans_pipeline.models import BestTrainingJob, DeployResult, EndpointStatus, ModelCreated, RunConfig
from kmeans_pipeline.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

VARIANT_NAME = "AllTraffic"
# Statuses in which SageMaker is still working on the endpoint: wait, don't touch.
TRANSITIONAL = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


def create_model(
    config: RunConfig, best: BestTrainingJob, settings: StackSettings, sagemaker: SageMakerClient
) -> ModelCreated:
    tags = settings.tag_list(RunId=config.run_id, ExecutionName=config.execution_name)
    model_name, config_name = config.names.model, config.names.endpoint_config
    with sagemaker_call("CreateModel", model_name):
        return _create_model(sagemaker, settings, best, model_name, config_name, tags)


def _create_model(
    sagemaker: SageMakerClient,
    settings: StackSettings,
    best: BestTrainingJob,
    model_name: str,
    config_name: str,
    tags: list,
) -> ModelCreated:
    model, _ = create_or_reuse(
        create=lambda: sagemaker.create_model(
            ModelName=model_name,
            PrimaryContainer={"Image": settings.kmeans_image_uri, "ModelDataUrl": best.artifact_uri},
            ExecutionRoleArn=settings.sagemaker_role_arn,
            EnableNetworkIsolation=True,
            Tags=tags,
        ),
        describe=lambda: describe_or_none(sagemaker.describe_model, ModelName=model_name),
        operation="CreateModel",
        resource=model_name,
    )
    if model.get("PrimaryContainer", {}).get("ModelDataUrl") != best.artifact_uri:
        raise ResourceConflictError(f"Model {model_name} exists but serves another artifact")
    # The instance type is a stack parameter (a str); the stubs know every type by name.
    variant: Any = {
        "VariantName": VARIANT_NAME,
        "ModelName": model_name,
        "InstanceType": settings.hosting_instance_type,
        "InitialInstanceCount": 1,
        "InitialVariantWeight": 1.0,
    }
    create_or_reuse(
        create=lambda: sagemaker.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[variant],
            KmsKeyId=settings.kms_key_arn,
            Tags=tags,
        ),
        describe=lambda: describe_or_none(sagemaker.describe_endpoint_config, EndpointConfigName=config_name),
        operation="CreateEndpointConfig",
        resource=config_name,
    )
    return ModelCreated(model_name=model_name, endpoint_config_name=config_name, model_data_url=best.artifact_uri)


def deploy(
    config: RunConfig, endpoint_config_name: str, settings: StackSettings, sagemaker: SageMakerClient
) -> DeployResult:
    """Create the endpoint, or update it in place (blue/green); report "busy" while another deploy runs."""
    name = config.names.endpoint
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
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


def check_endpoint(
    config: RunConfig, endpoint_config_name: str, sagemaker: SageMakerClient, previous_config_name: str | None = None
) -> EndpointStatus:
    """One look at the endpoint after this run's deployment started.

    `previous_config_name` is what the endpoint served before this run updated it: back on it means rolled back;
    on a third config (and no FailureReason) means a later execution's deployment replaced this one.
    """
    name = config.names.endpoint
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
        return EndpointStatus(
            outcome="failed",
            status="Missing",
            endpoint_config_name=None,
            error="EndpointMissing",
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
            error="EndpointSuperseded",
            cause=f"Endpoint {name} serves {current}, deployed by another execution after this run's "
            f"{endpoint_config_name}: this run's model is not the one serving",
        )
    if status == "InService":
        return EndpointStatus(
            outcome="failed",
            status=status,
            endpoint_config_name=current,
            error="EndpointUpdateRolledBack",
            failure_reason=reason,
            cause=f"Endpoint {name} still serves {current}: the update to {endpoint_config_name} was rolled back: "
            + (reason or "SageMaker gave no FailureReason"),
        )
    return EndpointStatus(
        outcome="failed",
        status=status,
        endpoint_config_name=current,
        error="EndpointFailed",
        failure_reason=reason,
        cause=f"Endpoint {name} is {status}: " + (reason or "SageMaker gave no FailureReason"),
    )
