"""Verify endpoint: once the endpoint is InService on this run's config, check that it answers as the model should.

A sample of the test rows (``EndpointCheckRows``) is scored through the endpoint, in requests well under the 6 MB
payload limit (throttling and server errors are retried by the client, then by the state machine), and compared
with numpy's distances to the same centroids, within the error any float32 K-Means arithmetic may make
(``model.tolerance``: either formula, any summation order). A malformed answer, a cluster outside ``0..k-1``, a
model with other than ``k`` centroids, a cluster clearly farther than the closest, or a distance off by more than
its bound (squared distances are named as such) fails the check. Then the previous endpoint config is put back
(UpdateEndpoint), or on a first deploy the endpoint is deleted, so that nothing keeps serving a model that failed
its check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from kmeans_pipeline.aws.clients import sagemaker_call
from kmeans_pipeline.aws.endpoints import describe_endpoint
from kmeans_pipeline.aws.serving import batches, invoke_endpoint, parse_answer
from kmeans_pipeline.data.channels import read_rows
from kmeans_pipeline.errors import EndpointAnswerError, Failure, ModelArtifactError, SageMakerRequestError
from kmeans_pipeline.model.artifact import read_centroids
from kmeans_pipeline.model.tolerance import check, power
from kmeans_pipeline.schemas.dataset import Dataset
from kmeans_pipeline.schemas.results import EndpointVerification, ModelCreated
from kmeans_pipeline.schemas.run import RunConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

# Below this share of rows on which a 1 % distance error would show, the check says how little it proves.
LOW_POWER = 0.5


def invoke(runtime: SageMakerRuntimeClient, endpoint: str, body: bytes) -> bytes:
    """One scoring request. Throttling and server errors (and a model not ready yet) are raised as
    SageMakerThrottlingError / SageMakerUnavailableError, which the state machine retries (the check is
    idempotent), so that no Lambda sleeps. Any other refusal is the endpoint failing its check."""
    try:
        return invoke_endpoint(runtime, endpoint, body)
    except SageMakerRequestError as exc:
        raise EndpointAnswerError(str(exc)) from exc


RestoreAction = Literal["none", "updating", "deleted", "unknown", "failed"]


def restore(
    config: RunConfig, previous: str | None, first_deploy: bool, sagemaker: SageMakerClient
) -> tuple[RestoreAction, str | None]:
    """Put the previous config back on the endpoint, or delete the endpoint if this run created it."""
    name = config.names.endpoint
    if previous:
        with sagemaker_call("UpdateEndpoint", name):
            sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=previous)
        return "updating", previous
    if not first_deploy:
        return "unknown", None  # never delete an endpoint this run did not create
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is not None and endpoint.status != "Deleting":
        with sagemaker_call("DeleteEndpoint", name):
            sagemaker.delete_endpoint(EndpointName=name)
    return "deleted", None


def _overtaken(config: RunConfig, model: ModelCreated, sagemaker: SageMakerClient) -> str | None:
    """Why the endpoint no longer answers with this run's model (another execution's deployment), or None."""
    name = config.names.endpoint
    endpoint = describe_endpoint(sagemaker, name)
    if endpoint is None:
        return f"Endpoint {name} no longer exists"
    current, pending = endpoint.current, endpoint.pending
    if current != model.endpoint_config_name:
        return f"Endpoint {name} serves {current}, deployed by another execution after this run's {model.endpoint_config_name}"
    if endpoint.status != "InService" or pending not in {None, current}:
        return f"Endpoint {name} is {endpoint.status}" + (
            f", moving to {pending} for another execution" if pending not in {None, current} else ""
        )
    return None


def verify_endpoint(
    config: RunConfig,
    dataset: Dataset,
    model: ModelCreated,
    previous_config_name: str | None,
    first_deploy: bool,
    s3: S3Client,
    sagemaker: SageMakerClient,
    runtime: SageMakerRuntimeClient,
) -> EndpointVerification:
    X = read_rows(s3, dataset.test_uri, config.endpoint_check_rows, dataset.feature_dim)
    checked, differing = len(X), 0
    # Two runs at once: once another execution's deployment takes the endpoint, its answers are not this model's
    # to check, and putting "the previous config" back would undo that newer deployment. That run checks its own.
    overtaken = _overtaken(config, model, sagemaker)
    if overtaken:
        return EndpointVerification(
            passed=False,
            checked_rows=0,
            error=Failure.ENDPOINT_SUPERSEDED,
            cause=f"{overtaken}: this run's model is not the one serving, so it was not checked",
        )
    try:
        centroids = read_centroids(model.model_data_url, s3=s3)
        if centroids.shape[0] != dataset.k:
            raise ModelArtifactError(f"{model.model_data_url} holds {centroids.shape[0]} centroids, not k={dataset.k}")
        closest = np.empty(checked, dtype=np.int64)
        distance = np.empty(checked, dtype=np.float64)
        pieces = batches(X)
        for number, (start, body) in enumerate(pieces, 1):
            end = pieces[number][0] if number < len(pieces) else checked
            where = f"request {number} of {len(pieces)} (rows {start}-{end - 1})"
            payload = invoke(runtime, config.names.endpoint, body)
            closest[start:end], distance[start:end] = parse_answer(payload, end - start, dataset.k, where)
        differing, difference = check(X, centroids, closest, distance)
        if difference:
            raise EndpointAnswerError(f"the endpoint's answers disagree with the model's centroids: {difference}")
    except (EndpointAnswerError, ModelArtifactError) as exc:
        overtaken = _overtaken(config, model, sagemaker)
        if overtaken:  # the answers may have come from the other execution's model
            return EndpointVerification(
                passed=False,
                checked_rows=checked,
                differing_rows=differing,
                error=Failure.ENDPOINT_SUPERSEDED,
                cause=f"{overtaken} while this run checked it: this run's model is not the one serving",
            )
        try:
            action, restored = restore(config, previous_config_name, first_deploy, sagemaker)
        except Exception as failure:  # any failure: the check's must not be lost with the restore's
            action, restored = "failed", previous_config_name
            then = (
                f"putting back {previous_config_name or 'nothing'} failed too ({failure}): "
                f"{model.endpoint_config_name} still serves on {config.names.endpoint} and needs an operator"
            )
        else:
            then = {
                "updating": f"the previous config {restored} is being put back on {config.names.endpoint}",
                "deleted": f"the endpoint {config.names.endpoint} was a first deploy and is being deleted",
                "unknown": f"the config that served before is unknown, so {model.endpoint_config_name} still serves "
                f"on {config.names.endpoint} and needs an operator",
            }[action]
        return EndpointVerification(
            passed=False,
            checked_rows=checked,
            differing_rows=differing,
            error=type(exc).__name__ if isinstance(exc, ModelArtifactError) else Failure.ENDPOINT_VERIFICATION_FAILED,
            cause=f"Endpoint check of {model.endpoint_config_name} failed: {exc}; {then}",
            restore=action,
            restored_endpoint_config_name=restored,
        )
    share = power(X, centroids)
    warning = None
    if share < LOW_POWER:
        warning = (
            f"float32 resolves a 1% distance error on only {share:.0%} of the {checked} checked rows (features far "
            "from 0 leave float32 too few digits): the check passed but proves little; standardize the features"
        )
    return EndpointVerification(passed=True, checked_rows=checked, power=share, warning=warning)
