"""Record the model version: every evaluated model is a version of the stack's model registry group, and its
approval status follows what happened to it.

``registered`` (after Evaluate): the version with its evidence (the report, digest, metadata, model card), as
``Rejected`` when the quality gate keeps the serving model, ``PendingManualApproval`` when a person is asked, else
``Approved`` by the gate (its description says so). Then, as the run goes on: ``approved`` / ``rejected`` by a
person (their name and comment), ``timedOut`` (nobody answered), ``deployed`` (it serves: ``Serving=true``, and the
version it replaced gets ``Serving=false`` and ``ReplacedBy``), ``kept`` (it lost the final comparison with the
model serving at deploy time), ``superseded`` (another run's model took the endpoint), ``failed`` (the run failed
after registering it: the approval, the deploy lease or the deployment, so it never served). A run that compared
again under the deploy lease adds that final comparison's URI, digest and figures (``Final*``) to its version: the
registered report and its digest are never rewritten. The version a run deploys is the one the endpoint serves:
Create model makes the SageMaker model from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmeans_pipeline.aws.registry import (
    Status,
    describe_version,
    mark_replaced,
    metadata,
    model_card,
    one_line,
    read_evidence,
    register_version,
    report_digest,
    update_version,
)
from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.schemas.inputs import RecordVersionInput
from kmeans_pipeline.schemas.report import FinalComparison, ReportError, read_report
from kmeans_pipeline.schemas.results import ModelVersion
from kmeans_pipeline.schemas.settings import StackSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient


def register(
    step: RecordVersionInput, settings: StackSettings, s3: S3Client, sagemaker: SageMakerClient
) -> ModelVersion:
    config, evaluation, best, dataset = step.config, step.evaluation, step.best, step.dataset
    if best is None or dataset is None:
        raise InvalidInputError("Invalid step input: best and dataset are required to register the model")
    body = read_evidence(s3, evaluation.report_uri)
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
        NewMsd=gate.new_msd,
        ServingMsd=gate.serving_msd,
        ServingModel=gate.serving_model,
        GateTolerancePercent=gate.tolerance_percent,
        # A fraction (0.0123 is 1.23%): metadata values hold no %.
        FlaggedShare=evaluation.flagged_share,
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
        config_name = step.endpoint_config_name or step.config.names.endpoint_config
        return (
            "Approved",
            f"{(step.version.description if step.version else '').rstrip('.')}. Deployed to endpoint "
            f"{step.config.names.endpoint} ({config_name}), verified.",
            metadata(Deployed="true", Serving="true", EndpointConfig=config_name),
        )
    if step.event == "kept":
        return (
            "Rejected",
            f"Not deployed: it lost the final comparison with the model serving at deploy time: "
            f"{one_line(step.evaluation.gate.reason, 800)}",
            metadata(FinalComparison="lost"),
        )
    if step.event == "superseded":
        return (
            "Rejected",
            f"Not deployed: superseded by another run's deployment. {reason}",
            metadata(Superseded="true"),
        )
    return "Rejected", f"Not deployed: the run failed. {reason}", metadata(RunFailed="true")


def final_comparison(s3: S3Client, uri: str) -> dict[str, str]:
    """The metadata of a final comparison (made again under the deploy lease): its URI, the SHA-256 of its bytes, and
    its figures; the registered report's own (ReportUri, NewMsd, GateDecision...) stay those of the first."""
    body = read_evidence(s3, uri)
    try:
        comparison = FinalComparison.model_validate_json(body)
    except ValueError as exc:
        raise ReportError(f"final comparison {uri} is not valid: {exc}") from None
    gate = comparison.gate
    return metadata(
        FinalComparisonUri=uri,
        FinalComparisonDigest=report_digest(body),
        FinalGateDecision=gate.decision,
        FinalNewMsd=gate.new_msd,
        FinalServingMsd=gate.serving_msd,
        FinalServingModel=gate.serving_model,
        FinalGateTolerancePercent=gate.tolerance_percent,
    )


def _replaced(step: RecordVersionInput, group: str) -> str | None:
    """The version this run's deployment replaced, when it is another version of this stack's group."""
    replaced, ours = step.replaced_version, step.version.model_package_arn if step.version else None
    if step.event != "deployed" or not replaced or replaced == ours:
        return None
    return replaced if f":model-package/{group}/" in replaced else None


def record_version(
    step: RecordVersionInput, settings: StackSettings, s3: S3Client, sagemaker: SageMakerClient
) -> ModelVersion:
    if step.event == "registered":
        return register(step, settings, s3, sagemaker)
    if step.version is None:
        raise InvalidInputError(f"Invalid step input: version is required to record {step.event}")
    status, description, properties = _what_happened(step)
    if step.evaluation.comparison_uri:
        properties = {**properties, **final_comparison(s3, step.evaluation.comparison_uri)}
    update_version(sagemaker, step.version.model_package_arn, status, description, properties)
    if replaced := _replaced(step, settings.name_prefix):
        mark_replaced(sagemaker, replaced, by=step.version.model_package_arn, run_id=step.config.run_id)
    return ModelVersion(
        model_package_arn=step.version.model_package_arn,
        version=step.version.version,
        status=status,
        description=one_line(description),
    )
