"""The Model Registry in the stand-in: model package groups and their versions, checked as SageMaker checks them.

The constraints are the service model's (botocore's sagemaker 2017-07-24): names, ARN patterns, description
character classes (no control characters, so no newline), customer metadata (1-50 entries of a restricted
character set: no comma), metrics sources, ClientToken. What moto 5.2.1 gets wrong and this does not: a duplicate
group is refused; ClientToken makes CreateModelPackage idempotent; a version is PendingManualApproval unless told
otherwise; UpdateModelPackage merges customer metadata (and removes what CustomerMetadataPropertiesToRemove names)
and keeps what it is not given; DescribeModelPackage takes ``<group>/<version>`` as well as the ARN; the version's
model card and security config are kept. Wordings that are not known from AWS are marked UNVERIFIED.

A model made from a version (CreateModel with ``ModelPackageName``) takes the version's image and artifact; the
version must be Approved (the service model: "must be set to Approved to deploy the model"; where real SageMaker
refuses an unapproved one, CreateModel or the deployment, is UNVERIFIED, so the stand-in refuses early).
DescribeModel answers the container as it was given (``ModelPackageName`` only, as moto does): a caller finds the
artifact through DescribeModelPackage, which holds whether or not real SageMaker also fills in ``ModelDataUrl``.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from typing import Any

from . import validators
from .exceptions import ValidationException

APPROVAL = ("Approved", "Rejected", "PendingManualApproval")
CARD_STATUS = ("Draft", "PendingReview", "Approved", "Archived")
MAX_METADATA = 50
_ARN_OR_NAME = re.compile(
    r"(arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*\/)?([a-zA-Z0-9]([a-zA-Z0-9-]){0,62})(?<!-)"
)
_VERSIONED = re.compile(_ARN_OR_NAME.pattern + r"(\/[0-9]{1,9})?")
_PACKAGE_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]{9,16}:[0-9]{12}:model-package/[\S]{1,2048}")
_CLIENT_TOKEN = re.compile(r"[a-zA-Z0-9-]+")
_URL = re.compile(r"(https|s3)://([^/]+)/?(.*)")
_DIGEST = re.compile(r"[Ss][Hh][Aa]256:[0-9a-fA-F]{64}")
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def check_group_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 63 or not _GROUP_NAME.fullmatch(value):
        raise validators.constraint_error(
            value, "modelPackageGroupName", f"Member must satisfy regular expression pattern: {_GROUP_NAME.pattern}"
        )
    return value


def check_text(value: Any, where: str, maxlen: int) -> str:
    """``[\\p{L}\\p{M}\\p{Z}\\p{S}\\p{N}\\p{P}]*`` and a length: no control characters, so no newline."""
    if not isinstance(value, str):
        raise validators.constraint_error(value, where, "Member must be a string")
    if len(value) > maxlen:
        raise validators.constraint_error(value, where, f"Member must have length less than or equal to {maxlen}")
    bad = next((c for c in value if unicodedata.category(c)[0] not in "LMZSNP"), None)
    if bad is not None:
        raise validators.constraint_error(
            value, where, "Member must satisfy regular expression pattern: [\\p{L}\\p{M}\\p{Z}\\p{S}\\p{N}\\p{P}]*"
        )
    return value


def check_one_line(value: Any, where: str, maxlen: int) -> str:
    """``.*`` (no line terminators) and a length: ApprovalDescription."""
    if not isinstance(value, str) or len(value) > maxlen or re.search(r"[\n\r\u0085\u2028\u2029]", value):
        raise validators.constraint_error(
            value,
            where,
            f"Member must have length less than or equal to {maxlen} and satisfy regular expression pattern: .*",
        )
    return value


def check_metadata(props: Any, where: str = "customerMetadataProperties") -> dict[str, str]:
    """CustomerMetadataMap: 1-50 entries; key 1-128, value 1-256 of ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``."""
    if props is None:
        return {}
    if not isinstance(props, dict) or not 1 <= len(props) <= MAX_METADATA:
        raise validators.constraint_error(props, where, f"Map must have between 1 and {MAX_METADATA} entries")
    for key, value in props.items():
        for item, limit, part in ((key, 128, "key"), (value, 256, "value")):
            if (
                not isinstance(item, str)
                or not 1 <= len(item) <= limit
                or not all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in item)
            ):
                raise validators.constraint_error(
                    item,
                    f"{where}.{part}",
                    f"Member must have length between 1 and {limit} and satisfy regular expression pattern: "
                    "([\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*)",
                )
    return dict(props)


def _metrics_source(src: Any, where: str) -> None:
    if not isinstance(src, dict) or "ContentType" not in src or "S3Uri" not in src:
        raise ValidationException(f"{where} needs ContentType and S3Uri.")
    if not isinstance(src["S3Uri"], str) or len(src["S3Uri"]) > 1024 or not _URL.fullmatch(src["S3Uri"]):
        raise validators.constraint_error(
            src["S3Uri"], f"{where}.s3Uri", "Member must satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)"
        )
    if "ContentDigest" in src and not _DIGEST.fullmatch(str(src["ContentDigest"])):
        raise validators.constraint_error(
            src["ContentDigest"],
            f"{where}.contentDigest",
            "Member must satisfy regular expression pattern: [Ss][Hh][Aa]256:[0-9a-fA-F]{64}",
        )


def check_model_metrics(metrics: Any) -> None:
    """Each MetricsSource given; nothing is read from S3 (CreateModelPackage is not known to check the object)."""
    members = {
        "ModelQuality": ("Statistics", "Constraints"),
        "ModelDataQuality": ("Statistics", "Constraints"),
        "Bias": ("Report", "PreTrainingReport", "PostTrainingReport"),
        "Explainability": ("Report",),
    }
    for group, names in members.items():
        for member in names:
            src = ((metrics or {}).get(group) or {}).get(member)
            if src is not None:
                _metrics_source(src, f"modelMetrics.{group[0].lower()}{group[1:]}.{member[0].lower()}{member[1:]}")


def check_inference_specification(spec: Any, region: str) -> None:
    containers = (spec or {}).get("Containers")
    if not containers or not 1 <= len(containers) <= 15:
        raise ValidationException("InferenceSpecification.Containers must hold 1 to 15 containers.")
    if len(containers) > 1:
        raise ValidationException(
            "Inference pipelines are not supported by the SageMaker stand-in: one K-Means container."
        )
    container = containers[0]
    validators.check_image(container.get("Image"), "InferenceSpecification.Containers.1.Image", region)
    url = container.get("ModelDataUrl")
    if url is not None and (not isinstance(url, str) or len(url) > 1024 or not _URL.fullmatch(url)):
        raise validators.constraint_error(
            url,
            "inferenceSpecification.containers.1.member.modelDataUrl",
            "Member must satisfy regular expression pattern: (https|s3)://([^/]+)/?(.*)",
        )
    for kind in spec.get("SupportedResponseMIMETypes") or []:
        if not re.fullmatch(r"[-\w]+\/.+", kind):
            raise validators.constraint_error(
                kind,
                "inferenceSpecification.supportedResponseMIMETypes.member",
                "Member must satisfy regular expression pattern: [-\\w]+\\/.+",
            )


def check_model_card(card: Any) -> None:
    """ModelPackageModelCard: the content is the model card's JSON (at most 100,000 characters), the status one of
    Draft, PendingReview, Approved, Archived."""
    if card is None:
        return
    content, status = card.get("ModelCardContent"), card.get("ModelCardStatus")
    if content is not None:
        if not isinstance(content, str) or len(content) > 100_000:
            raise validators.constraint_error(
                "...", "modelCard.modelCardContent", "Member must have length less than or equal to 100000"
            )
        try:
            parsed = json.loads(content)
        except ValueError:
            raise ValidationException("ModelCard.ModelCardContent is not valid JSON.") from None  # UNVERIFIED
        if not isinstance(parsed, dict) or "model_package_details" in parsed:
            # The simplified schema of a model package's card has no model_package_details.
            raise ValidationException("ModelCard.ModelCardContent is not a model package's model card.")  # UNVERIFIED
    if status is not None:
        validators.check_enum(status, "modelCard.modelCardStatus", CARD_STATUS)


def check_client_token(token: Any) -> None:
    if token is not None and (
        not isinstance(token, str) or not 1 <= len(token) <= 36 or not _CLIENT_TOKEN.fullmatch(token)
    ):
        raise validators.constraint_error(
            token, "clientToken", "Member must satisfy regular expression pattern: [a-zA-Z0-9-]+ (1-36 characters)"
        )


def group_of(name_or_arn: Any) -> str:
    """The group name of a ``ModelPackageGroupName`` (its name or ARN)."""
    match = _ARN_OR_NAME.fullmatch(name_or_arn) if isinstance(name_or_arn, str) else None
    if not match:
        raise validators.constraint_error(
            name_or_arn,
            "modelPackageGroupName",
            f"Member must satisfy regular expression pattern: {_ARN_OR_NAME.pattern}",
        )
    return match.group(2)


def version_of(name: Any, field: str = "modelPackageName") -> tuple[str, int]:
    """(group, version) of a versioned package named by its ARN or ``<group>/<version>``."""
    if not isinstance(name, str) or not _VERSIONED.fullmatch(name):
        raise validators.constraint_error(
            name, field, f"Member must satisfy regular expression pattern: {_VERSIONED.pattern}"
        )
    tail = name.split(":model-package/", 1)[-1]
    if "/" not in tail:
        raise ValidationException(f"Model package {name} is not a versioned model package: give <group>/<version>.")
    group, version = tail.rsplit("/", 1)
    return group, int(version)


def check_package_arn(arn: Any) -> str:
    if not isinstance(arn, str) or not _PACKAGE_ARN.fullmatch(arn):
        raise validators.constraint_error(
            arn, "modelPackageArn", f"Member must satisfy regular expression pattern: {_PACKAGE_ARN.pattern}"
        )
    return arn


class ModelPackageGroup:
    def __init__(self, name: str, arn: str, description: str | None, created: float, caller: dict) -> None:
        self.name, self.arn, self.description, self.created, self.caller = name, arn, description, created, caller
        self.versions: list[ModelPackage] = []

    def summary(self) -> dict:
        return {
            "ModelPackageGroupName": self.name,
            "ModelPackageGroupArn": self.arn,
            "ModelPackageGroupDescription": self.description,
            "CreationTime": self.created,
            "ModelPackageGroupStatus": "Completed",
        }

    def describe(self) -> dict:
        return {**self.summary(), "CreatedBy": copy.deepcopy(self.caller)}


class ModelPackage:
    """One version of a group."""

    def __init__(self, group: ModelPackageGroup, version: int, arn: str, request: dict, created: float, caller: dict):
        self.group, self.version, self.arn, self.created = group, version, arn, created
        self.name = group.name  # a versioned package's ModelPackageName is its group's name
        self.request = copy.deepcopy(request)
        self.status = request.get("ModelApprovalStatus") or "PendingManualApproval"
        self.approval_description: str | None = None
        self.metadata = dict(request.get("CustomerMetadataProperties") or {})
        self.card = copy.deepcopy(request.get("ModelCard"))
        self.modified: float | None = None
        self.created_by, self.modified_by = caller, None

    def container(self) -> dict:
        return copy.deepcopy(self.request["InferenceSpecification"]["Containers"][0])

    def describe(self) -> dict:
        request = self.request
        return {
            "ModelPackageName": self.group.name,
            "ModelPackageGroupName": self.group.name,
            "ModelPackageVersion": self.version,
            "ModelPackageArn": self.arn,
            "ModelPackageDescription": request.get("ModelPackageDescription"),
            "CreationTime": self.created,
            "InferenceSpecification": copy.deepcopy(request.get("InferenceSpecification")),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": False,
            "ModelApprovalStatus": self.status,
            "CreatedBy": self.created_by,
            "MetadataProperties": copy.deepcopy(request.get("MetadataProperties")),
            "ModelMetrics": copy.deepcopy(request.get("ModelMetrics")),
            "LastModifiedTime": self.modified,
            "LastModifiedBy": self.modified_by,
            "ApprovalDescription": self.approval_description,
            "CustomerMetadataProperties": dict(self.metadata) or None,
            "SecurityConfig": copy.deepcopy(request.get("SecurityConfig")),
            "ModelCard": copy.deepcopy(self.card),
        }

    def summary(self) -> dict:
        return {
            "ModelPackageName": self.group.name,
            "ModelPackageGroupName": self.group.name,
            "ModelPackageVersion": self.version,
            "ModelPackageArn": self.arn,
            "ModelPackageDescription": self.request.get("ModelPackageDescription"),
            "CreationTime": self.created,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": self.status,
        }
