"""Steps 5 to 7: model and endpoint config requests, and the deploy and check decisions for every endpoint status."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from kmeans_pipeline.errors import (
    EndpointUnavailableError,
    ResourceConflictError,
    SageMakerLimitExceededError,
    SageMakerRequestError,
    SageMakerThrottlingError,
    SageMakerUnavailableError,
)
from kmeans_pipeline.schemas.results import BestTrainingJob, ModelVersion
from kmeans_pipeline.steps.check_endpoint import check_endpoint
from kmeans_pipeline.steps.create_model import create_model
from kmeans_pipeline.steps.deploy_endpoint import deploy_endpoint
from kmeans_pipeline.steps.resolve_run import resolve_run
from testkit.aws import REGION, Recorder

START = "2026-11-23T10:00:00.000Z"
NEW, OLD = "kmeans-dev-newconfig1", "kmeans-dev-oldconfig0"


def make_config(settings):
    return resolve_run({"dataKey": "incoming/t.csv"}, "deploy-run", START, settings, None)


BEST = BestTrainingJob(
    training_job_name="kmeans-dev-abc-001-00000001",
    hyperparameters={"k": "8"},
    test_msd=1.0,
    artifact_uri="s3://bucket/models/abc/kmeans-dev-abc-001-00000001/output/model.tar.gz",
)


VERSION = ModelVersion(
    model_package_arn=f"arn:aws:sagemaker:{REGION}:123456789012:model-package/kmeans-dev/4",
    version=4,
    status="Approved",
    description="Approved by the quality gate",
)


def test_model_and_endpoint_config_requests(settings, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    recorder = Recorder(sagemaker)
    config = make_config(settings)
    created = create_model(config, BEST, VERSION, settings, sagemaker)

    [model] = recorder.requests("CreateModel")
    assert model["ModelName"] == created.model_name == config.names.model
    # The endpoint serves the registered version: the model is made from it, not from the artifact directly.
    assert model["PrimaryContainer"] == {"ModelPackageName": VERSION.model_package_arn}
    assert created.model_package_arn == VERSION.model_package_arn
    assert model["ExecutionRoleArn"] == settings.sagemaker_role_arn
    assert model["EnableNetworkIsolation"] is True
    [endpoint_config] = recorder.requests("CreateEndpointConfig")
    assert endpoint_config["KmsKeyId"] == settings.kms_key_arn
    [variant] = endpoint_config["ProductionVariants"]
    assert variant["ModelName"] == model["ModelName"]
    assert variant["InstanceType"] == settings.hosting_instance_type
    for request in (model, endpoint_config):
        tags = {t["Key"]: t["Value"] for t in request["Tags"]}
        assert {"Project", "Environment", "Owner", "RunId"} <= set(tags)


def test_a_retried_create_model_reuses_what_it_made(settings, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    recorder = Recorder(sagemaker)
    config = make_config(settings)
    first = create_model(config, BEST, VERSION, settings, sagemaker)
    assert first == create_model(config, BEST, VERSION, settings, sagemaker)
    assert len(recorder.requests("CreateModel")) == 1
    assert len(recorder.requests("CreateEndpointConfig")) == 1


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_an_approved_version_is_made_into_a_model(settings, aws, status):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    recorder = Recorder(sagemaker)
    unapproved = VERSION.model_copy(update={"status": status})
    with pytest.raises(ResourceConflictError, match=f"is {status}: only an Approved version is deployed"):
        create_model(make_config(settings), BEST, unapproved, settings, sagemaker)
    assert recorder.requests("CreateModel") == []


def endpoint(status, config_name=OLD, reason=None, pending=None):
    response = {
        "EndpointName": "kmeans-dev",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/kmeans-dev",
        "EndpointConfigName": config_name,
        "EndpointStatus": status,
        "CreationTime": "2026-11-23T10:00:00Z",
        "LastModifiedTime": "2026-11-23T10:00:00Z",
    }
    if reason is not None:
        response["FailureReason"] = reason
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return response


def run_deploy(settings, *responses, expect=()):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    for response in responses:
        if response == "missing":
            stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint kmeans-dev.")
        else:
            stub.add_response("describe_endpoint", response)
    for operation, params in expect:
        stub.add_response(
            operation,
            {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/kmeans-dev"}
            if operation != "delete_endpoint"
            else {},
            params,
        )
    with stub:
        result = deploy_endpoint(make_config(settings), NEW, settings, client)
    stub.assert_no_pending_responses()
    return result


def test_first_deploy_creates_the_endpoint_with_tags(settings):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint kmeans-dev.")
    stub.add_response(
        "create_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/kmeans-dev"}
    )
    with stub:
        result = deploy_endpoint(make_config(settings), NEW, settings, client)
    assert result.action == "created" and result.endpoint_name == settings.endpoint_name


def test_in_service_endpoint_is_updated_in_place(settings):
    result = run_deploy(
        settings,
        endpoint("InService"),
        expect=[("update_endpoint", {"EndpointName": "kmeans-dev", "EndpointConfigName": NEW})],
    )
    assert result.action == "updated" and result.previous_endpoint_config_name == OLD


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"])
def test_another_deployment_in_progress_means_wait(settings, status):
    assert run_deploy(settings, endpoint(status)).action == "busy"


def test_a_retry_after_our_own_update_does_not_update_twice(settings):
    assert run_deploy(settings, endpoint("Updating", OLD, pending=NEW)).action == "inProgress"


def test_failed_endpoint_is_deleted_to_be_created_again(settings):
    result = run_deploy(
        settings, endpoint("Failed", reason="x"), expect=[("delete_endpoint", {"EndpointName": "kmeans-dev"})]
    )
    assert result.action == "deletingFailed"


def test_rollback_failed_endpoint_needs_an_operator(settings):
    with pytest.raises(EndpointUnavailableError, match="UpdateRollbackFailed"):
        run_deploy(settings, endpoint("UpdateRollbackFailed", reason="rollback broke"))


def test_throttled_update_is_retryable(settings):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("describe_endpoint", endpoint("InService"))
    stub.add_client_error("update_endpoint", "ThrottlingException", "Rate exceeded")
    with stub, pytest.raises(SageMakerThrottlingError):
        deploy_endpoint(make_config(settings), NEW, settings, client)


@pytest.mark.parametrize(
    ("response", "outcome", "error", "quoted"),
    [
        (endpoint("Creating", NEW), "running", None, None),
        (endpoint("Updating", OLD), "running", None, None),
        (endpoint("InService", NEW), "inService", None, None),
        (endpoint("Updating", NEW, pending="kmeans-dev-laterrun"), "inService", None, None),
        (
            endpoint("InService", OLD, reason="Model failed health check"),
            "failed",
            "EndpointUpdateRolledBack",
            "Model failed health check",
        ),
        (endpoint("InService", OLD), "failed", "EndpointUpdateRolledBack", "no FailureReason"),
        (
            endpoint("Failed", NEW, reason="ClientError: cannot load model.tar.gz"),
            "failed",
            "EndpointFailed",
            "ClientError: cannot load model.tar.gz",
        ),
        (endpoint("UpdateRollbackFailed", OLD, reason="stuck"), "failed", "EndpointFailed", "stuck"),
        (endpoint("InService", "kmeans-dev-thirdconfig"), "failed", "EndpointSuperseded", "another execution"),
        ("missing", "failed", "EndpointMissing", "no longer exists"),
    ],
)
def test_check_endpoint_every_status(settings, response, outcome, error, quoted):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    if response == "missing":
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint")
    else:
        stub.add_response("describe_endpoint", response)
    with stub:
        status = check_endpoint(make_config(settings), NEW, client, previous_config_name=OLD)
    assert status.outcome == outcome and status.error == error
    if quoted:
        assert quoted in status.cause


def test_two_first_deploys_at_once_the_later_one_waits(settings):
    """Both executions saw no endpoint; the one whose CreateEndpoint loses the race waits instead of failing."""
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint kmeans-dev.")
    stub.add_client_error("create_endpoint", "ValidationException", "Cannot create already existing endpoint")
    stub.add_response("describe_endpoint", endpoint("Creating", "kmeans-dev-otherrun"))
    with stub:
        result = deploy_endpoint(make_config(settings), NEW, settings, client)
    assert result.action == "busy"


def test_two_updates_at_once_the_later_one_waits(settings):
    """Both executions saw the endpoint InService; the one whose UpdateEndpoint loses the race waits instead of
    failing."""
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("describe_endpoint", endpoint("InService"))
    stub.add_client_error("update_endpoint", "ValidationException", 'Cannot update in-progress endpoint "kmeans-dev".')
    stub.add_response("describe_endpoint", endpoint("Updating", OLD, pending="kmeans-dev-otherrun"))
    with stub:
        result = deploy_endpoint(make_config(settings), NEW, settings, client)
    stub.assert_no_pending_responses()
    assert result.action == "busy" and result.endpoint_status == "Updating"


def test_an_update_refused_for_another_reason_is_reported(settings):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("describe_endpoint", endpoint("InService"))
    stub.add_client_error("update_endpoint", "ValidationException", "Could not find endpoint configuration")
    stub.add_response("describe_endpoint", endpoint("InService"))
    with stub, pytest.raises(SageMakerRequestError, match="Could not find endpoint configuration"):
        deploy_endpoint(make_config(settings), NEW, settings, client)


def test_a_create_refused_for_another_reason_is_reported(settings):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint kmeans-dev.")
    stub.add_client_error("create_endpoint", "ResourceLimitExceeded", "account endpoint limit")
    stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint kmeans-dev.")
    with stub, pytest.raises(SageMakerLimitExceededError, match="account endpoint limit"):
        deploy_endpoint(make_config(settings), NEW, settings, client)


def test_sagemaker_server_errors_are_retryable(settings):
    client = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error(
        "describe_endpoint", "InternalFailure", "We encountered an internal error", http_status_code=500
    )
    with stub, pytest.raises(SageMakerUnavailableError):
        check_endpoint(make_config(settings), NEW, client)
