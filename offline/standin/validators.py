"""Request validation as SageMaker does it: the constraints of the botocore service model and SageMaker's own rules.

Every check raises the typed error SageMaker answers with (mostly ``ValidationException``) and its message.
Checks that need the outside world take it as a callable (a KMS key lookup, an S3 HEAD, a model lookup in
the backend), so this module holds no state and imports no backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from . import kmeans
from .exceptions import ResourceLimitExceeded, ValidationException
from .search import Range

MAX_TRAINING_JOBS_PER_TUNING_JOB = 500
MAX_PARALLEL_TRAINING_JOBS = 100

# The registry account of the built-in K-Means image per region (SageMaker Python SDK
# image_uri_config/kmeans.json). Regions not listed accept any 12-digit account.
KMEANS_REGISTRIES = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-north-1": "669576153137",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "eu-south-1": "257386234256",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}
_IMAGE_RE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]+))?(?:@sha256:[0-9a-f]{64})?$"
)
# Instance families whose storage is local NVMe: SageMaker refuses a KMS key for their volumes.
_NVME_FAMILIES = {
    "m5d",
    "c5d",
    "r5d",
    "m5ad",
    "r5ad",
    "m6id",
    "c6id",
    "r6id",
    "g4dn",
    "g4ad",
    "g5",
    "g6",
    "g6e",
    "p3dn",
    "p4d",
    "p4de",
    "p5",
    "p5e",
    "p5en",
    "trn1",
    "trn1n",
    "inf2",
    "i3",
    "i3en",
}

# name patterns and lengths from the botocore service model
_NAME_RULES = {
    "HyperParameterTuningJobName": (32, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}"),
    "TrainingJobName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "ModelName": (63, r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?"),
    "EndpointConfigName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "EndpointName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    "VariantName": (63, r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
}
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_KMS_RE = re.compile(r"[a-zA-Z0-9:/_-]*")
_S3_URI_RE = re.compile(r"^s3://([^/]+)/?(.*)$")
_TAG_RE = re.compile(r"^[\w\s_.:/=+\-@]*$", re.UNICODE)


# -- the service model's constraints -------------------------------------------------------------


def _camel(field: str) -> str:
    return ".".join(part[:1].lower() + part[1:] for part in field.split("."))


def constraint_error(value: Any, where: str, constraint: str) -> ValidationException:
    """The error botocore's service model constraints produce on SageMaker's side."""
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy constraint: {constraint}"
    )


def check_enum(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise constraint_error(value, where, f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def check_name(value: Any, field: str, rule: str | None = None) -> str:
    maxlen, pattern = _NAME_RULES[rule or field]
    where = _camel(field)
    if not isinstance(value, str) or not value:
        raise constraint_error(value, where, "Member must have length greater than or equal to 1")
    if len(value) > maxlen:
        raise constraint_error(value, where, f"Member must have length less than or equal to {maxlen}")
    if not re.fullmatch(pattern, value):
        raise constraint_error(value, where, f"Member must satisfy regular expression pattern: {pattern}")
    return value


def check_role(value: Any, field: str) -> None:
    if not isinstance(value, str) or not (20 <= len(value) <= 2048) or not _ROLE_ARN_RE.fullmatch(value):
        raise constraint_error(
            value,
            _camel(field),
            r"Member must satisfy regular expression pattern: ^arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$",
        )


def check_max_results(max_results: Any) -> int:
    if not isinstance(max_results, int) or not 1 <= max_results <= 100:
        raise constraint_error(max_results, "maxResults", "Member must have value between 1 and 100")
    return max_results


def parse_s3_uri(uri: Any, field: str) -> tuple[str, str]:
    m = _S3_URI_RE.match(uri) if isinstance(uri, str) else None
    if not m or not m.group(1):
        raise ValidationException(f"{field} must be an S3 URI of the form s3://bucket/prefix, got '{uri}'.")
    return m.group(1), m.group(2)


def check_tags(tags: Any) -> list[dict[str, str]]:
    if tags is None:
        return []
    if len(tags) > 50:
        raise ValidationException(
            f"1 validation error detected: Value at 'tags' failed to satisfy constraint: Member "
            f"must have length less than or equal to 50 (got {len(tags)} tags)"
        )
    seen = set()
    out = []
    for tag in tags:
        key, value = tag.get("Key"), tag.get("Value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_RE.match(key):
            raise ValidationException(
                f"Tag key '{key}' is invalid: 1-128 characters of [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]."
            )
        if not isinstance(value, str) or len(value) > 256 or not _TAG_RE.match(value):
            raise ValidationException(f"Tag value '{value}' for key '{key}' is invalid: 0-256 characters.")
        if key.lower().startswith("aws:"):
            raise ValidationException(f"Tag key '{key}' is invalid: the aws: prefix is reserved for AWS use.")
        if key in seen:
            raise ValidationException(f"Duplicate tag key '{key}' in the request.")
        seen.add(key)
        out.append({"Key": key, "Value": value})
    return out


def check_vpc(vpc: dict | None) -> None:
    if vpc is not None and (
        not 1 <= len(vpc.get("Subnets") or []) <= 16 or not 1 <= len(vpc.get("SecurityGroupIds") or []) <= 5
    ):
        raise ValidationException("VpcConfig needs 1-16 Subnets and 1-5 SecurityGroupIds.")


def _int_str(value: Any, what: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"\s*[+-]?\d+\s*", value):
        raise ValidationException(f"{what} '{value}' is not an integer.")
    return int(value)


# -- images, keys and instances --------------------------------------------------------------------


def check_image(image: Any, field: str, region: str) -> None:
    if not isinstance(image, str) or not image:
        raise ValidationException(f"{field} is required: the built-in K-Means image, kmeans:1.")
    m = _IMAGE_RE.match(image)
    expected_account = KMEANS_REGISTRIES.get(region)
    expected = f"{expected_account or '<account>'}.dkr.ecr.{region}.amazonaws.com/kmeans:1"
    if not m or m.group("repo") != "kmeans":
        raise ValidationException(
            f"{field} '{image}' is not the built-in K-Means algorithm. This SageMaker stand-in "
            f"runs only SageMaker's K-Means ({expected}); other algorithms and custom images are "
            "not supported."
        )
    if m.group("tag") != "1":
        raise ValidationException(
            f"{field} '{image}': use the K-Means image with tag '1' ({expected}), not '{m.group('tag') or 'no tag'}'."
        )
    if m.group("region") != region:
        raise ValidationException(
            f"{field} '{image}' is in region {m.group('region')}, but SageMaker runs in {region}: use {expected}."
        )
    if expected_account and m.group("account") != expected_account:
        raise ValidationException(
            f"{field} '{image}': the K-Means image of {region} is in account {expected_account} ({expected})."
        )


def check_kms(key_id: Any, field: str, describe_key: Callable[[str], dict] | None) -> None:
    """The key's syntax; then, given ``describe_key`` (KMS DescribeKey's response), that it exists and is enabled."""
    if key_id in (None, ""):
        return
    if not isinstance(key_id, str) or len(key_id) > 2048 or not _KMS_RE.fullmatch(key_id):
        raise constraint_error(
            key_id, _camel(field), r"Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]*$"
        )
    if describe_key is None:
        return
    try:
        meta = describe_key(key_id)["KeyMetadata"]
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NotFoundException", "InvalidArnException", "AccessDeniedException"):
            raise ValidationException(
                f"KMS key '{key_id}' given as {field} does not exist or is not accessible."
            ) from None
        return  # cannot verify: let it pass
    except Exception:
        return
    if meta.get("KeyState") != "Enabled":
        raise ValidationException(f"KMS key '{key_id}' given as {field} is {meta.get('KeyState')}, not Enabled.")


def _instance_family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) >= 3 else ""


def check_nvme_kms(instance_type: Any, key_id: Any, field: str) -> None:
    if key_id and isinstance(instance_type, str) and _instance_family(instance_type) in _NVME_FAMILIES:
        raise ValidationException(
            f"{field} is not supported for instance type {instance_type}: its storage is local "
            "NVMe SSD, which the instance encrypts itself. Use an EBS-backed instance type "
            "(for example ml.m5 or ml.c5) or omit the key."
        )


# -- CreateHyperParameterTuningJob ---------------------------------------------------------------


@dataclass
class TuningJobSpec:
    """What a valid CreateHyperParameterTuningJob request asks for."""

    name: str
    tags: list[dict[str, str]]
    strategy: str
    objective: dict
    ranges: list[Range]
    max_jobs: int
    static: dict[str, str]


def check_tuning_job(p: dict, region: str, kms: Callable[[Any, str], None]) -> TuningJobSpec:
    """Everything but the warm-start parents (the backend looks those up); ``kms(key_id, field)`` checks a key."""
    name = check_name(p.get("HyperParameterTuningJobName"), "HyperParameterTuningJobName")
    tags = check_tags(p.get("Tags"))
    if p.get("TrainingJobDefinitions"):
        raise ValidationException(
            "TrainingJobDefinitions (several algorithms in one tuning job) is not supported by "
            "the SageMaker stand-in: use TrainingJobDefinition."
        )
    if p.get("Autotune"):
        raise ValidationException("Autotune is not supported by the SageMaker stand-in.")
    config = p.get("HyperParameterTuningJobConfig") or {}
    definition = p.get("TrainingJobDefinition")
    if not definition:
        raise ValidationException("TrainingJobDefinition is required.")
    strategy = config.get("Strategy")
    check_enum(strategy, "hyperParameterTuningJobConfig.strategy", ("Bayesian", "Random", "Hyperband", "Grid"))
    if strategy == "Hyperband":
        raise ValidationException(
            "The Hyperband strategy needs an algorithm that reports intermediate objective "
            "metrics; the built-in K-Means does not. Use Bayesian, Random or Grid."
        )
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not objective:
        raise ValidationException("HyperParameterTuningJobObjective is required.")
    if objective.get("MetricName") not in kmeans.OBJECTIVE_METRICS:
        raise ValidationException(
            f"The objective metric for the hyperparameter tuning job, [{objective.get('MetricName')}], "
            "isn't valid for the [kmeans] algorithm. Choose a valid objective metric: "
            + ", ".join(kmeans.OBJECTIVE_METRICS)
            + "."
        )
    if objective.get("Type") != "Minimize":
        raise ValidationException(
            f"The objective metric type [{objective.get('Type')}] isn't valid for the "
            f"[{objective['MetricName']}] metric of the [kmeans] algorithm: it must be Minimize."
        )
    ranges = check_ranges(config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}, strategy)
    max_jobs = _check_resource_limits(config.get("ResourceLimits") or {}, strategy, ranges)
    static = check_training_definition(definition, ranges, objective["MetricName"], region, kms)
    return TuningJobSpec(name, tags, strategy, objective, ranges, max_jobs, static)


def _check_resource_limits(limits: dict, strategy: str, ranges: list[Range]) -> int:
    """MaxNumberOfTrainingJobs (a Grid search defaults it to its number of combinations)."""
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    max_parallel = limits.get("MaxParallelTrainingJobs")
    if not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValidationException("ResourceLimits.MaxParallelTrainingJobs must be an integer >= 1.")
    if strategy == "Grid":
        combos = math.prod(len(r.values) for r in ranges)
        if max_jobs is not None and max_jobs > combos:
            raise ValidationException(
                f"MaxNumberOfTrainingJobs ({max_jobs}) exceeds the {combos} combinations of the Grid search."
            )
        max_jobs = max_jobs or combos
    if not isinstance(max_jobs, int) or max_jobs < 1:
        raise ValidationException(
            "ResourceLimits.MaxNumberOfTrainingJobs is required for the "
            f"{strategy} strategy and must be an integer >= 1."
        )
    if max_jobs > MAX_TRAINING_JOBS_PER_TUNING_JOB:
        raise ResourceLimitExceeded(
            f"The value of MaxNumberOfTrainingJobs ({max_jobs}) exceeds the account-level "
            f"service limit 'Number of training jobs per tuning job' of "
            f"{MAX_TRAINING_JOBS_PER_TUNING_JOB}."
        )
    if max_parallel > MAX_PARALLEL_TRAINING_JOBS:
        raise ResourceLimitExceeded(
            f"The value of MaxParallelTrainingJobs ({max_parallel}) exceeds the account-level "
            f"service limit 'Number of concurrent training jobs per tuning job' of "
            f"{MAX_PARALLEL_TRAINING_JOBS}."
        )
    if strategy != "Grid":
        combos = math.prod((r.hi - r.lo + 1) if r.kind == "Integer" else len(r.values) for r in ranges)
        if combos < max_jobs:
            raise ValidationException(
                "You don't have enough combinations of hyperparameter ranges. The total number "
                f"of hyperparameter combinations for the provided ranges [{float(combos)}] must "
                f"be equal or greater than the value of MaxNumberOfJobs, [{max_jobs}]. Provide "
                "additional ranges."
            )
    return max_jobs


def _check_tunable(name: Any) -> None:
    if name not in kmeans.TUNABLE:
        known = name in kmeans.KNOWN
        raise ValidationException(
            f"The hyperparameter tuning job that you requested has the following "
            f"{'untunable' if known else 'unknown'} hyperparameters: [{name}]. Tunable "
            "hyperparameters of the kmeans algorithm: " + ", ".join(sorted(kmeans.TUNABLE)) + "."
        )


def check_ranges(spec: dict, strategy: str) -> list[Range]:
    ranges: list[Range] = []
    names: set[str] = set()

    def add(r: Range) -> None:
        if r.name in names:
            raise ValidationException(f"Hyperparameter {r.name} appears in more than one parameter range.")
        names.add(r.name)
        ranges.append(r)

    for r in spec.get("IntegerParameterRanges") or []:
        name = r.get("Name")
        _check_tunable(name)
        if kmeans.TUNABLE[name] != "Integer":
            raise ValidationException(f"Hyperparameter {name} must be given as a CategoricalParameterRange.")
        lo = _int_str(r.get("MinValue"), f"MinValue of {name}")
        hi = _int_str(r.get("MaxValue"), f"MaxValue of {name}")
        if lo > hi:
            raise ValidationException(
                f"MinValue ({lo}) of hyperparameter {name} must be less than or equal to its MaxValue ({hi})."
            )
        for v in (lo, hi):
            try:
                kmeans.check_value(name, str(v))
            except ValueError as exc:
                raise ValidationException(f"Invalid range for {name}: {exc}.") from None
        scaling = r.get("ScalingType") or "Auto"
        if scaling == "ReverseLogarithmic":
            raise ValidationException(
                f"ReverseLogarithmic scaling is only valid for continuous ranges, not for {name}."
            )
        if scaling == "Logarithmic" and lo <= 0:
            raise ValidationException(f"Logarithmic scaling of {name} needs MinValue > 0.")
        add(Range(name, "Integer", lo, hi, scaling))
    for r in spec.get("ContinuousParameterRanges") or []:
        name = r.get("Name")
        _check_tunable(name)
        raise ValidationException(
            f"Hyperparameter {name} of the kmeans algorithm takes "
            f"{'integer' if kmeans.TUNABLE[name] == 'Integer' else 'categorical'} values: use "
            f"{'an IntegerParameterRange' if kmeans.TUNABLE[name] == 'Integer' else 'a CategoricalParameterRange'}."
        )
    for r in spec.get("CategoricalParameterRanges") or []:
        name = r.get("Name")
        _check_tunable(name)
        values = list(r.get("Values") or [])
        if not values or len(values) > 30:
            raise ValidationException(f"CategoricalParameterRange {name} needs 1 to 30 values.")
        if len(set(values)) != len(values):
            raise ValidationException(f"CategoricalParameterRange {name} has duplicate values.")
        for v in values:
            try:
                kmeans.check_value(name, v)
            except ValueError as exc:
                raise ValidationException(f"Invalid value for {name}: {exc}.") from None
        add(Range(name, "Categorical", values=values))
    if spec.get("AutoParameters"):
        raise ValidationException("AutoParameters are not supported by the SageMaker stand-in.")
    if not ranges:
        raise ValidationException("ParameterRanges must contain at least one hyperparameter range.")
    if len(ranges) > 30:
        raise ValidationException("A tuning job can search at most 30 hyperparameters.")
    if strategy == "Grid" and any(r.kind != "Categorical" for r in ranges):
        raise ValidationException("The Grid strategy only supports CategoricalParameterRanges.")
    return ranges


def check_training_definition(
    d: dict, ranges: list[Range], metric: str, region: str, kms: Callable[[Any, str], None]
) -> dict[str, str]:
    """The TrainingJobDefinition of a tuning job; returns its static hyperparameters."""
    algo = d.get("AlgorithmSpecification") or {}
    if algo.get("AlgorithmName"):
        raise ValidationException(
            "AlgorithmSpecification.AlgorithmName is not supported by the SageMaker stand-in: "
            "give the built-in K-Means image as TrainingImage."
        )
    check_image(algo.get("TrainingImage"), "AlgorithmSpecification.TrainingImage", region)
    if algo.get("MetricDefinitions"):
        raise ValidationException(
            "You can't override the metric definitions for Amazon SageMaker algorithms. Please "
            "retry the request without specifying metric definitions."
        )
    if algo.get("TrainingInputMode") not in ("File", "Pipe", "FastFile"):
        raise ValidationException("AlgorithmSpecification.TrainingInputMode must be File, Pipe or FastFile.")
    check_role(d.get("RoleArn"), "TrainingJobDefinition.RoleArn")
    static = _check_static_hyperparameters(dict(d.get("StaticHyperParameters") or {}), ranges)
    _check_channels(d.get("InputDataConfig") or [], metric)

    out = d.get("OutputDataConfig") or {}
    parse_s3_uri(out.get("S3OutputPath"), "OutputDataConfig.S3OutputPath")
    kms(out.get("KmsKeyId"), "OutputDataConfig.KmsKeyId")
    rc = d.get("ResourceConfig")
    if d.get("HyperParameterTuningResourceConfig"):
        raise ValidationException(
            "HyperParameterTuningResourceConfig is not supported by the SageMaker stand-in: use ResourceConfig."
        )
    if not rc:
        raise ValidationException("TrainingJobDefinition.ResourceConfig is required.")
    if not rc.get("InstanceType"):
        raise ValidationException("ResourceConfig.InstanceType is required.")
    if not isinstance(rc.get("InstanceCount"), int) or rc["InstanceCount"] < 1:
        raise ValidationException("ResourceConfig.InstanceCount must be an integer >= 1.")
    if not isinstance(rc.get("VolumeSizeInGB"), int) or rc["VolumeSizeInGB"] < 1:
        raise ValidationException("ResourceConfig.VolumeSizeInGB must be an integer >= 1.")
    check_nvme_kms(rc.get("InstanceType"), rc.get("VolumeKmsKeyId"), "VolumeKmsKeyId")
    kms(rc.get("VolumeKmsKeyId"), "ResourceConfig.VolumeKmsKeyId")
    stop = d.get("StoppingCondition") or {}
    if d.get("EnableManagedSpotTraining"):
        if "MaxWaitTimeInSeconds" not in stop or stop["MaxWaitTimeInSeconds"] < stop.get("MaxRuntimeInSeconds", 86400):
            raise ValidationException(
                "Managed spot training needs StoppingCondition.MaxWaitTimeInSeconds, at least MaxRuntimeInSeconds."
            )
    check_vpc(d.get("VpcConfig"))
    return static


def _check_static_hyperparameters(static: dict, ranges: list[Range]) -> dict[str, str]:
    tuned_names = {r.name for r in ranges}
    for key, value in static.items():
        if not isinstance(value, str):
            raise ValidationException(f"Static hyperparameter {key} must be a string.")
        if key.startswith("_"):
            continue
        if key not in kmeans.KNOWN:
            raise ValidationException(
                f"Static hyperparameter [{key}] is not a hyperparameter of the kmeans algorithm. "
                "Known hyperparameters: " + ", ".join(sorted(kmeans.KNOWN)) + "."
            )
        if key in tuned_names:
            raise ValidationException(
                f"Hyperparameter {key} is both static and tunable: remove it from "
                "StaticHyperParameters or from ParameterRanges."
            )
        try:
            kmeans.check_value(key, value)
        except ValueError as exc:
            raise ValidationException(f"Invalid static hyperparameter: {exc}.") from None
    for required in kmeans.REQUIRED:
        if required not in static:
            raise ValidationException(
                f"The required hyperparameter [{required}] of the kmeans algorithm is missing "
                "from StaticHyperParameters."
            )
    return static


def _check_channels(channels: list, metric: str) -> None:
    seen = set()
    for ch in channels:
        cname = ch.get("ChannelName")
        if cname in seen:
            raise ValidationException(f"Channel name {cname} appears more than once in InputDataConfig.")
        seen.add(cname)
        if cname not in ("train", "test"):
            raise ValidationException(
                f"Channel [{cname}] is not supported by the kmeans algorithm: supported channels "
                "are train (required) and test."
            )
        src = (ch.get("DataSource") or {}).get("S3DataSource")
        if not src:
            raise ValidationException(f"Channel {cname}: only S3DataSource is supported by the SageMaker stand-in.")
        if src.get("S3DataType") != "S3Prefix":
            raise ValidationException(
                f"Channel {cname}: S3DataType {src.get('S3DataType')} is not supported by the "
                "SageMaker stand-in; use S3Prefix."
            )
        parse_s3_uri(src.get("S3Uri"), f"Channel {cname} S3Uri")
        ctype, cparams = kmeans.parse_content_type(ch.get("ContentType"))
        if ctype not in ("", "text/csv", "application/x-recordio-protobuf"):
            raise ValidationException(
                f"Content type {ch.get('ContentType')} is not supported for channel {cname} by "
                "the kmeans algorithm. Supported content types: text/csv, "
                "application/x-recordio-protobuf."
            )
        if ctype == "text/csv" and "label_size" in cparams:
            if not re.fullmatch(r"\d+", cparams["label_size"]):
                raise ValidationException(
                    f"Channel {cname}: label_size in content type '{ch.get('ContentType')}' "
                    "must be a non-negative integer."
                )
    if "train" not in seen:
        raise ValidationException("The kmeans algorithm requires a channel named train in InputDataConfig.")
    if metric.startswith("test:") and "test" not in seen:
        raise ValidationException(
            f"The objective metric {metric} is computed on the test channel: add a channel "
            "named test to InputDataConfig."
        )


def check_list_training_jobs(p: dict) -> tuple[str, str]:
    """ListTrainingJobsForHyperParameterTuningJob's SortBy and SortOrder (with their defaults)."""
    sort_by = p.get("SortBy") or "Name"
    order = p.get("SortOrder") or "Ascending"
    check_enum(sort_by, "sortBy", ("Name", "CreationTime", "Status", "FinalObjectiveMetricValue"))
    check_enum(order, "sortOrder", ("Ascending", "Descending"))
    return sort_by, order


# -- CreateModel and CreateEndpointConfig ----------------------------------------------------------


def check_model(p: dict, region: str, model_data: Callable[[Any, str], None]) -> tuple[str, list[dict[str, str]]]:
    """A CreateModel request; ``model_data(url, field)`` checks that the artifact exists. Returns name and tags."""
    name = check_name(p.get("ModelName"), "ModelName")
    tags = check_tags(p.get("Tags"))
    primary, containers = p.get("PrimaryContainer"), p.get("Containers")
    if primary and containers:
        raise ValidationException("Specify either PrimaryContainer or Containers, not both.")
    if not primary and not containers:
        raise ValidationException("One of PrimaryContainer or Containers is required.")
    if containers and len(containers) > 1:
        raise ValidationException(
            "Inference pipelines (several Containers) are not supported by the SageMaker "
            "stand-in: give one container holding the K-Means model."
        )
    container = primary or containers[0]
    if container.get("Mode", "SingleModel") != "SingleModel":
        raise ValidationException("Multi-model endpoints are not supported by the SageMaker stand-in.")
    if container.get("ModelPackageName"):
        # The registered version's image and artifact (the backend resolves them); none of its own.
        if container.get("Image") or container.get("ModelDataUrl") or container.get("ModelDataSource"):
            raise ValidationException(
                "A container that names a ModelPackageName takes its image and model data from the model package."
            )  # UNVERIFIED wording
        if p.get("ExecutionRoleArn") is not None:
            check_role(p.get("ExecutionRoleArn"), "ExecutionRoleArn")
        check_vpc(p.get("VpcConfig"))
        return name, tags
    check_image(container.get("Image"), "Image", region)
    if p.get("ExecutionRoleArn") is not None:
        check_role(p.get("ExecutionRoleArn"), "ExecutionRoleArn")
    source = container.get("ModelDataSource")
    if source:
        s3src = source.get("S3DataSource") or {}
        if s3src.get("S3DataType") != "S3Object" or s3src.get("CompressionType") != "Gzip":
            raise ValidationException(
                "The K-Means container loads a model.tar.gz: ModelDataSource.S3DataSource must "
                "be S3DataType S3Object with CompressionType Gzip (or use ModelDataUrl)."
            )
        model_data(s3src.get("S3Uri"), "ModelDataSource.S3DataSource.S3Uri")
    if container.get("ModelDataUrl") is not None:
        model_data(container["ModelDataUrl"], "ModelDataUrl")
    check_vpc(p.get("VpcConfig"))
    return name, tags


def check_endpoint_config(
    p: dict, model_exists: Callable[[Any], None], kms: Callable[[Any, str], None]
) -> tuple[str, list[dict[str, str]]]:
    """A CreateEndpointConfig request; ``model_exists(name)`` raises for a model that is not there."""
    name = check_name(p.get("EndpointConfigName"), "EndpointConfigName")
    tags = check_tags(p.get("Tags"))
    variants = p.get("ProductionVariants") or []
    if not 1 <= len(variants) <= 10:
        raise ValidationException("ProductionVariants must hold 1 to 10 variants.")
    for unsupported in ("AsyncInferenceConfig", "ExplainerConfig", "ShadowProductionVariants"):
        if p.get(unsupported):
            raise ValidationException(f"{unsupported} is not supported by the SageMaker stand-in.")
    kms_key = p.get("KmsKeyId")
    names = set()
    for v in variants:
        vname = check_name(v.get("VariantName"), "VariantName")
        if vname.lower() in names:
            raise ValidationException(f"Duplicate VariantName {vname} in ProductionVariants.")
        names.add(vname.lower())
        if v.get("ServerlessConfig"):
            if kms_key:
                raise ValidationException("KmsKeyId is not supported for serverless endpoints.")
        else:
            if not v.get("InstanceType"):
                raise ValidationException(f"Variant {vname}: InstanceType is required.")
            if not isinstance(v.get("InitialInstanceCount"), int) or v["InitialInstanceCount"] < 1:
                raise ValidationException(f"Variant {vname}: InitialInstanceCount must be >= 1.")
            check_nvme_kms(v["InstanceType"], kms_key, "KmsKeyId")
        if float(v.get("InitialVariantWeight", 1.0)) < 0:
            raise ValidationException(f"Variant {vname}: InitialVariantWeight must be >= 0.")
        model_exists(v.get("ModelName"))
    kms(kms_key, "KmsKeyId")
    return name, tags
