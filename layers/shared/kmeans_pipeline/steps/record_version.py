"""Record the model version: every evaluated model is a version of the stack's model registry group, and its
approval status follows what happened to it.

``registered`` (after Evaluate): the version with its evidence (the report, digest, metadata, model card), as
``Rejected`` when the quality gate keeps the serving model, ``PendingManualApproval`` when a person is asked, else
``Approved`` by the gate (its description says so). Then, as the run goes on: ``approved`` / ``rejected`` by a
person (their name and comment), ``timedOut`` (nobody answered), ``deployed`` (it serves), ``kept`` (it lost the
final comparison with the model serving at deploy time), ``superseded`` (another run's model took the endpoint),
``failed`` (its deployment failed, so it never served). The version a run deploys is the one the endpoint serves:
Create model makes the SageMaker model from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmeans_pipeline.aws.registry import (
    Status,
    describe_version,
    metadata,
    model_card,
    one_line,
    register_version,
    report_digest,
    update_version,
)
from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.inputs import RecordVersionInput
from kmeans_pipeline.schemas.report import MAX_REPORT_BYTES, read_report
from kmeans_pipeline.schemas.results import ModelVersion
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


def _uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _read(s3: S3Client, uri: str) -> bytes:
    bucket, key = _uri(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return body.read(MAX_REPORT_BYTES + 1)
    finally:
        body.close()


def register(
    step: RecordVersionInput, settings: StackSettings, s3: S3Client, sagemaker: SageMakerClient
) -> ModelVersion:
    config, evaluation, best, dataset = step.config, step.evaluation, step.best, step.dataset
    if best is None or dataset is None:
        raise InvalidInputError("Invalid step input: best and dataset are required to register the model")
    body = _read(s3, evaluation.report_uri)
    report = read_report(body, evaluation.report_uri)
    gate = evaluation.gate
    status: Status
    if gate.decision == "keep":
        status, description = "Rejected", f"Rejected by the quality gate: {gate.reason}"
    elif config.approval:
        status, description = "PendingManualApproval", "Waiting for a person's approval"
    else:
        status, description = "Approved", f"Approved by the quality gate (no person asked): {gate.reason}"
    treatment = " ".join(f"{c.column}={c.kind}" for c in report.treatment.columns)
    properties = metadata(
        RunId=config.run_id,
        ExecutionName=config.execution_name,
        ExecutionId=step.execution_id,
        Trigger=config.trigger,
        DatasetUri=f"s3://{dataset.source.bucket}/{dataset.source.key}",
        DatasetVersion=dataset.source.version_id,
        TrainRows=dataset.train_rows,
        TestRows=dataset.test_rows,
        Treatment=treatment,
        K=report.k,
        KSource=report.k_choice.source if report.k_choice else None,
        TrainingJob=best.training_job_name,
        GateDecision=gate.decision,
        NewMsd=f"{gate.new_msd:.6g}",
        ServingMsd=None if gate.serving_msd is None else f"{gate.serving_msd:.6g}",
        ServingModel=gate.serving_model,
        GateTolerancePercent=f"{gate.tolerance_percent:g}",
        FlaggedShare=f"{evaluation.flagged_share:.4%}",
        ReportUri=evaluation.report_uri,
        ApprovalMode="person" if config.approval and gate.decision == "promote" else "gate",
        Model=config.names.model,
    )
    arn = register_version(
        sagemaker,
        group=settings.name_prefix,
        # One version per run, however often the step is retried (1-36 characters of [a-zA-Z0-9-]).
        client_token=f"{config.run_id}-version",
        image=settings.kmeans_image_uri,
        artifact=best.artifact_uri,
        instance_type=settings.hosting_instance_type,
        report_uri=evaluation.report_uri,
        digest=report_digest(body),
        description=f"Run {config.run_id}: {evaluation.headline}",
        status=status,
        properties=properties,
        card=model_card(report, evaluation.report_uri, config.anomaly_percentile),
        kms_key_arn=settings.kms_key_arn,
        commit=None,
        generated_by=step.execution_id,
        tags=settings.tag_list(RunId=config.run_id, ExecutionName=config.execution_name),
    )
    # CreateModelPackage takes no ApprovalDescription: why the status is what it is comes with an update.
    update_version(sagemaker, arn, status, description, {})
    version = describe_version(sagemaker, arn)["ModelPackageVersion"]
    return ModelVersion(model_package_arn=arn, version=version, status=status, description=one_line(description))


def _what_happened(step: RecordVersionInput) -> tuple[Status, str, dict[str, str]]:
    """(status, description, metadata) of an event after registration."""
    approval, reason = step.approval, one_line(step.reason or "", 900)
    who = one_line((approval.by if approval else None) or "an unnamed approver", 200)
    comment = one_line((approval.comment if approval else None) or "", 700)
    said = f": {comment}" if comment else ""
    if step.event == "approved":
        return "Approved", f"Approved by {who}{said}", metadata(ApprovedBy=who, ApprovalMode="person")
    if step.event == "rejected":
        return "Rejected", f"Rejected by {who}{said}", metadata(RejectedBy=who, ApprovalMode="person")
    if step.event == "timedOut":
        hours = step.config.approval_timeout_seconds / 3600
        return (
            "Rejected",
            f"Nobody approved or rejected it within {hours:g} hours: not deployed",
            metadata(RejectedBy="approval timeout"),
        )
    if step.event == "deployed":
        return (
            "Approved",
            f"{(step.version.description if step.version else '').rstrip('.')}. Deployed to endpoint "
            f"{step.config.names.endpoint}"
            f" ({step.endpoint_config_name or step.config.names.endpoint_config}), verified.",
            metadata(Deployed="true", EndpointConfig=step.endpoint_config_name or step.config.names.endpoint_config),
        )
    if step.event == "kept":
        return (
            "Rejected",
            f"Not deployed: it lost the final comparison with the model serving at deploy time: "
            f"{one_line(step.evaluation.gate.reason, 800)}",
            metadata(GateDecision="keep", FinalComparison="lost"),
        )
    if step.event == "superseded":
        return (
            "Rejected",
            f"Not deployed: superseded by another run's deployment. {reason}",
            metadata(Superseded="true"),
        )
    return "Rejected", f"Not deployed: its deployment failed. {reason}", metadata(DeploymentFailed="true")


def record_version(
    step: RecordVersionInput, settings: StackSettings, s3: S3Client, sagemaker: SageMakerClient
) -> ModelVersion:
    if step.event == "registered":
        return register(step, settings, s3, sagemaker)
    if step.version is None:
        raise InvalidInputError(f"Invalid step input: version is required to record {step.event}")
    status, description, properties = _what_happened(step)
    update_version(sagemaker, step.version.model_package_arn, status, description, properties)
    return ModelVersion(
        model_package_arn=step.version.model_package_arn,
        version=step.version.version,
        status=status,
        description=one_line(description),
    )
