"""The SageMaker Model Registry as the record of every model a run evaluated.

One model package group per stack (``<NamePrefix>-<EnvironmentName>``, the template's ``ModelRegistry``); each
evaluated model is a version of it holding its inference specification (the K-Means image and artifact), the
evaluation report as its model metrics (``ModelQuality.Statistics``: the report's S3 URI with a SHA-256 digest of
its bytes, so the evidence is tamper-evident), the metadata a reviewer needs (``CustomerMetadataProperties``), and a
model card (intended use, limits, the evaluation's headline figures) encrypted with the stack's key. Its approval
status follows the run (``steps/record_version.py``).

SageMaker's limits, which the calls here keep to (botocore's service model; the stand-in checks them the same way):
descriptions without control characters (one line), ApprovalDescription at most 1,024 characters, at most 50
metadata entries whose values hold 1-256 of letters, digits, spaces and ``_ . : / = + - @`` (no comma). There is no
approver field (``LastModifiedBy`` is the caller's IAM identity, the pipeline's role): the person who answered is
in ``ApprovalDescription`` and the metadata ``ApprovedBy`` / ``RejectedBy``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import TYPE_CHECKING, Any, Literal

from kmeans_pipeline.aws.clients import sagemaker_call
from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.schemas.report import MAX_REPORT_BYTES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

    from kmeans_pipeline.schemas.report import EvaluationReport

Status = Literal["Approved", "Rejected", "PendingManualApproval"]
CARD_STATUS = {"PendingManualApproval": "PendingReview", "Approved": "Approved", "Rejected": "Archived"}
MAX_DESCRIPTION = 1024
MAX_METADATA = 50
_METADATA_REFUSED = re.compile(r"[^\w\s.:/=+\-@]")


def one_line(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Text SageMaker takes as a description: control characters (newlines) made spaces, at most ``limit``."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def metadata_value(value: Any) -> str | None:
    """A value CustomerMetadataProperties takes (1-256 characters of its set; others become _), None if empty. A
    number is written here, to 6 significant digits (a share as a fraction: ``%`` is not in the set)."""
    if isinstance(value, float):
        value = f"{value:.6g}"
    text = _METADATA_REFUSED.sub("_", str(value).replace(",", " "))[:256].strip()
    return text or None


def metadata(**values: Any) -> dict[str, str]:
    """CustomerMetadataProperties of these values (None and empty ones left out)."""
    out = {key: v for key, value in values.items() if value is not None and (v := metadata_value(value))}
    if len(out) > MAX_METADATA:
        raise ValueError(f"{len(out)} metadata entries; a model package holds at most {MAX_METADATA}")
    return out


def report_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def read_evidence(s3: S3Client, uri: str) -> bytes:
    """The bytes of a report (or final comparison) a version names, which its digest is taken of."""
    bucket, key = split_s3_uri(uri)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return body.read(MAX_REPORT_BYTES + 1)
    finally:
        body.close()


def model_card(report: EvaluationReport, report_uri: str, anomaly_percentile: float) -> str:
    """The version's model card (SageMaker's model card JSON, the simplified schema of a model package's card):
    what the model is for, what it is not, and the evaluation's headline figures."""
    flagged = report.flagged.per_cluster_share
    card = {
        "intended_uses": {
            "purpose_of_model": "Flag records that lie far from every normal pattern (cluster) seen in training.",
            "intended_uses": (
                "Screening records for review: a flagged record is unusual for the data the model was trained on, "
                "with the features that make it unusual named in the CSV's units. A person decides what it means."
            ),
            "factors_affecting_model_efficiency": (
                "Traffic that drifts from the training data (the stack's drift alarm watches it); feature "
                "treatments (category levels unseen in training are scored with none set)."
            ),
            "risk_rating": "Medium",
            "explanations_for_risk_rating": (
                "Unsupervised: it ranks unusualness, not fraud or error; its threshold flags a fixed share of the "
                f"evaluation's records ({anomaly_percentile:g}th percentile of distances)."
            ),
        },
        "evaluation_details": [
            {
                "name": "held-out test records",
                "evaluation_observation": one_line(report.headline, 2048),
                "datasets": [report.dataset.test_uri],
                "metric_groups": [
                    {
                        "name": "evaluation",
                        "metric_data": [
                            {"name": "k", "type": "number", "value": report.k},
                            {"name": "evaluation MSD", "type": "number", "value": report.evaluation_msd},
                            {"name": "test MSD (tuning)", "type": "number", "value": report.test_msd},
                            {"name": "evaluated rows", "type": "number", "value": report.evaluated_rows},
                            {"name": "flagged share", "type": "number", "value": flagged},
                            {
                                "name": "overall threshold",
                                "type": "number",
                                "value": report.thresholds.overall if report.thresholds.overall is not None else 0,
                            },
                        ],
                    }
                ],
            }
        ],
        "additional_information": {
            "caveats_and_recommendations": (
                "A flag says 'unusual', not 'wrong'. Explanations name the features beyond a cluster's normal "
                "range; they are not causes. Retrain when the drift alarm goes off. The evaluation report is the "
                f"evidence: {report_uri}"
            ),
            "custom_details": {
                "run_id": report.run_id,
                "report": report_uri,
                "gate": one_line(f"{report.gate.decision}: {report.gate.reason}", 1024),
            },
        },
    }
    return json.dumps(card)


def register_version(
    sagemaker: SageMakerClient,
    *,
    group: str,
    client_token: str,
    image: str,
    artifact: str,
    instance_type: str,
    report_uri: str,
    digest: str,
    description: str,
    status: Status,
    properties: dict[str, str],
    card: str,
    kms_key_arn: str,
    commit: str | None,
    generated_by: str | None,
    tags: list,
) -> str:
    """CreateModelPackage (idempotent on a retry through ``client_token``); returns the version's ARN."""
    extra: dict[str, Any] = {}
    # The instance type is a stack parameter (a str); the stubs know every type by name.
    specification: Any = {
        "Containers": [{"Image": image, "ModelDataUrl": artifact}],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
        "SupportedRealtimeInferenceInstanceTypes": [instance_type],
    }
    if generated_by:
        extra["MetadataProperties"] = {"GeneratedBy": generated_by[:1024], **({"CommitId": commit} if commit else {})}
    with sagemaker_call("CreateModelPackage", group):
        answer = sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=one_line(description),
            InferenceSpecification=specification,
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": report_uri, "ContentDigest": digest}
                }
            },
            ModelApprovalStatus=status,
            CustomerMetadataProperties=properties,
            ModelCard={"ModelCardContent": card, "ModelCardStatus": CARD_STATUS[status]},  # type: ignore[typeddict-item]
            SecurityConfig={"KmsKeyId": kms_key_arn},
            ClientToken=client_token,
            Tags=tags,
            **extra,
        )
    return answer["ModelPackageArn"]


def update_version(
    sagemaker: SageMakerClient, arn: str, status: Status, description: str, properties: dict[str, str]
) -> None:
    """The version's approval status, why (one line), and metadata merged in; its card's status follows."""
    extra: dict[str, Any] = {"CustomerMetadataProperties": properties} if properties else {}  # 1-50 entries
    with sagemaker_call("UpdateModelPackage", arn):
        sagemaker.update_model_package(
            ModelPackageArn=arn,
            ModelApprovalStatus=status,
            ApprovalDescription=one_line(description),
            ModelCard={"ModelCardStatus": CARD_STATUS[status]},  # type: ignore[typeddict-item]
            **extra,
        )


def describe_version(sagemaker: SageMakerClient, name: str) -> dict:
    with sagemaker_call("DescribeModelPackage", name):
        return dict(sagemaker.describe_model_package(ModelPackageName=name))


def mark_replaced(sagemaker: SageMakerClient, arn: str, *, by: str, run_id: str) -> None:
    """A version that served until ``by`` (a version's ARN) replaced it: no longer serving. Its status and description
    stay (it was approved, and it did serve); only its metadata changes."""
    with sagemaker_call("UpdateModelPackage", arn):
        sagemaker.update_model_package(
            ModelPackageArn=arn,
            CustomerMetadataProperties=metadata(Serving="false", ReplacedBy=by, ReplacedByRun=run_id),
        )
