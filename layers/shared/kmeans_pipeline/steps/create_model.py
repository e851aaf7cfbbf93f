"""Create model and endpoint config: make the run's registered model version servable (idempotent on a retry).

The SageMaker model is made from the version (``ModelPackageName``), so the endpoint serves exactly what the
registry records; the version must be Approved first (Record the approval, or the quality gate when no person is
asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kmeans_pipeline.aws.clients import create_or_reuse, describe_or_none, sagemaker_call
from kmeans_pipeline.errors import ResourceConflictError
from kmeans_pipeline.schemas.results import BestTrainingJob, ModelCreated, ModelVersion
from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

VARIANT_NAME = "AllTraffic"


def create_model(
    config: RunConfig,
    best: BestTrainingJob,
    version: ModelVersion,
    settings: StackSettings,
    sagemaker: SageMakerClient,
) -> ModelCreated:
    if version.status != "Approved":
        raise ResourceConflictError(
            f"Model version {version.model_package_arn} is {version.status}: only an Approved version is deployed"
        )
    tags = settings.tag_list(RunId=config.run_id, ExecutionName=config.execution_name)
    model_name, config_name = config.names.model, config.names.endpoint_config
    with sagemaker_call("CreateModel", model_name):
        return _create_model(sagemaker, settings, best, version, model_name, config_name, tags)


def _create_model(
    sagemaker: SageMakerClient,
    settings: StackSettings,
    best: BestTrainingJob,
    version: ModelVersion,
    model_name: str,
    config_name: str,
    tags: list,
) -> ModelCreated:
    model, _ = create_or_reuse(
        create=lambda: sagemaker.create_model(
            ModelName=model_name,
            PrimaryContainer={"ModelPackageName": version.model_package_arn},
            ExecutionRoleArn=settings.sagemaker_role_arn,
            EnableNetworkIsolation=True,
            Tags=tags,
        ),
        describe=lambda: describe_or_none(sagemaker.describe_model, ModelName=model_name),
        operation="CreateModel",
        resource=model_name,
    )
    if model.get("PrimaryContainer", {}).get("ModelPackageName") != version.model_package_arn:
        raise ResourceConflictError(f"Model {model_name} exists but serves another model version")
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
    return ModelCreated(
        model_name=model_name,
        endpoint_config_name=config_name,
        model_data_url=best.artifact_uri,
        model_package_arn=version.model_package_arn,
    )
