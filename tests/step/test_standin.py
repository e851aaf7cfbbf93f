"""The SageMaker stand-in, driven only through ordinary boto3 clients (moto answers S3 and KMS)."""

from __future__ import annotations

import datetime
import io
import json
import re
import time
import zipfile
from types import SimpleNamespace

import boto3
import botocore.session
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from offline.standin import Faults, SageMakerStandIn, Timing
from offline.standin.kmeans import write_recordio_protobuf
from offline.standin.ndarray import read_model_tar_gz, write_model_tar_gz
from testkit.aws import ACCOUNT, REGION

IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"
BUCKET = "standin-test-bucket"
CENTERS = np.array([[-10.0, -10.0], [0.0, 10.0], [10.0, -5.0], [12.0, 12.0]])


# ----------------------------------------------------------------------------------------------
# Response shapes: every raw response body must fit the botocore output shape
# ----------------------------------------------------------------------------------------------

_MODEL = botocore.session.get_session().get_service_model("sagemaker")
# Members the service model marks required that SageMaker itself omits in some states.
_OPTIONAL_IN_PRACTICE = {("DescribeTrainingJob", "ModelArtifacts")}


def _check_shape(shape, value, path: str, errors: list, op: str) -> None:
    t = shape.type_name
    if t == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {value!r}")
            return
        for key, v in value.items():
            if key not in shape.members:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _check_shape(shape.members[key], v, f"{path}.{key}", errors, op)
        for key in shape.required_members:
            if key not in value and not (path == op and (op, key) in _OPTIONAL_IN_PRACTICE):
                errors.append(f"{path}.{key}: required member missing")
    elif t == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            _check_shape(shape.member, v, f"{path}[{i}]", errors, op)
    elif t == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            _check_shape(shape.value, v, f"{path}[{k}]", errors, op)
    elif t == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
            return
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} not in enum {shape.name}")
        maxlen = shape.metadata.get("max")
        if maxlen is not None and len(value) > maxlen:
            errors.append(f"{path}: longer than {maxlen}")
        pattern = shape.metadata.get("pattern")
        if pattern:
            try:
                if not re.fullmatch(pattern, value):
                    errors.append(f"{path}: {value!r} does not match {pattern}")
            except re.error:
                pass
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
    elif t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected a number, got {value!r}")
    elif t == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")
    elif t == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected epoch seconds, got {value!r}")


class ShapeChecker:
    def __init__(self):
        self.errors: list[str] = []
        self.checked: set[str] = set()

    def __call__(self, operation_model, response_dict, **_):
        if response_dict["status_code"] >= 300:
            body = json.loads(response_dict["body"] or b"{}")
            if set(body) != {"__type", "message"}:
                self.errors.append(f"{operation_model.name}: error body {body}")
            return
        body = json.loads(response_dict["body"] or b"{}")
        if operation_model.output_shape is not None:
            _check_shape(operation_model.output_shape, body, operation_model.name, self.errors, operation_model.name)
        self.checked.add(operation_model.name)


# ----------------------------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------------------------


def blobs(n: int, seed: int = 0, centers=CENTERS, std: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(centers), size=n)
    return centers[labels] + rng.normal(scale=std, size=(n, centers.shape[1]))


def csv_bytes(X: np.ndarray) -> bytes:
    return ("\n".join(",".join(f"{v:.6f}" for v in row) for row in X) + "\n").encode()


# One botocore session for the module: creating clients from it skips reloading the service models
# (a fresh boto3.client() costs ~0.1 s each). Clients made with plain boto3.client() behave the same,
# see the first tests.
_SESSION: list = []


def session() -> boto3.session.Session:
    if not _SESSION:
        _SESSION.append(boto3.session.Session(region_name=REGION))
    return _SESSION[0]


@pytest.fixture
def aws():
    with mock_aws():
        s3 = session().client("s3")
        s3.create_bucket(Bucket=BUCKET)
        kms = session().client("kms")
        key = kms.create_key(Description="standin tests")["KeyMetadata"]["Arn"]
        yield SimpleNamespace(s3=s3, kms=kms, key=key)


@pytest.fixture
def standin(aws):
    s = SageMakerStandIn(
        region=REGION,
        account_id=ACCOUNT,
        faults=Faults(),
        timing=Timing(endpoint_seconds=0.15, endpoint_delete_seconds=0.05),
    )
    s.install()
    yield s
    s.uninstall()


@pytest.fixture
def checker():
    return ShapeChecker()


@pytest.fixture
def sm(standin, checker):
    client = session().client("sagemaker", config=Config(retries={"mode": "standard"}))
    client.meta.events.register("before-parse.sagemaker", checker)
    yield client
    assert checker.errors == []


@pytest.fixture
def rt(standin):
    return session().client("sagemaker-runtime")


@pytest.fixture
def data(aws):
    """Train/test CSV channels of 4 well separated blobs."""
    train, test = blobs(4000, seed=1), blobs(1000, seed=2)
    aws.s3.put_object(Bucket=BUCKET, Key="data/train/part-0.csv", Body=csv_bytes(train[:2500]))
    aws.s3.put_object(Bucket=BUCKET, Key="data/train/part-1.csv", Body=csv_bytes(train[2500:]))
    aws.s3.put_object(Bucket=BUCKET, Key="data/test/test.csv", Body=csv_bytes(test))
    return SimpleNamespace(
        train=train, test=test, train_uri=f"s3://{BUCKET}/data/train/", test_uri=f"s3://{BUCKET}/data/test/"
    )


def channel(name: str, uri: str, content_type: str | None = "text/csv;label_size=0") -> dict:
    ch = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        },
    }
    if content_type is not None:
        ch["ContentType"] = content_type
    return ch


def tuning_request(
    name: str,
    *,
    train_uri: str,
    test_uri: str | None,
    kms_key: str | None = None,
    max_jobs: int = 4,
    parallel: int = 2,
    strategy: str = "Bayesian",
    static: dict | None = None,
    ranges: dict | None = None,
    objective: str = "test:msd",
    content_type: str | None = "text/csv;label_size=0",
    tags: list | None = None,
    image: str = IMAGE,
) -> dict:
    channels = [channel("train", train_uri, content_type)]
    if test_uri:
        channels.append(channel("test", test_uri, content_type))
    output = {"S3OutputPath": f"s3://{BUCKET}/models/"}
    if kms_key:
        output["KmsKeyId"] = kms_key
    req = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": objective},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": ranges
            if ranges is not None
            else {
                "IntegerParameterRanges": [
                    {"Name": "extra_center_factor", "MinValue": "2", "MaxValue": "10"},
                    {"Name": "mini_batch_size", "MinValue": "300", "MaxValue": "2000"},
                    {"Name": "epochs", "MinValue": "1", "MaxValue": "5"},
                ],
                "CategoricalParameterRanges": [{"Name": "init_method", "Values": ["kmeans++", "random"]}],
            },
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static if static is not None else {"k": "4", "feature_dim": "2"},
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "InputDataConfig": channels,
            "OutputDataConfig": output,
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "EnableNetworkIsolation": True,
        },
    }
    if tags:
        req["Tags"] = tags
    return req


def wait_tuning(sm, name: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if d["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
            return d
        assert time.monotonic() < deadline, f"tuning job {name} still {d['HyperParameterTuningJobStatus']}"
        time.sleep(0.05)


def wait_endpoint(sm, name: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        d = sm.describe_endpoint(EndpointName=name)
        if d["EndpointStatus"] not in ("Creating", "Updating", "RollingBack", "SystemUpdating"):
            return d
        assert time.monotonic() < deadline
        time.sleep(0.02)


def all_training_jobs(sm, name: str) -> list[dict]:
    out, kwargs = [], {"HyperParameterTuningJobName": name, "MaxResults": 100}
    while True:
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        out += page["TrainingJobSummaries"]
        if "NextToken" not in page:
            return out
        kwargs["NextToken"] = page["NextToken"]


def code_of(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def put_model(aws, key: str, centroids) -> str:
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=write_model_tar_gz(np.asarray(centroids)))
    return f"s3://{BUCKET}/{key}"


def make_model_and_config(sm, name: str, model_url: str, kms_key: str | None = None) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": model_url})
    kwargs = {"KmsKeyId": kms_key} if kms_key else {}
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
        ],
        **kwargs,
    )


def numpy_predictions(X, centroids):
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(centroids, dtype=np.float32)
    d = np.sqrt(((X[:, None, :] - C[None]) ** 2).sum(-1))
    return d.argmin(1), d.min(1)


# ----------------------------------------------------------------------------------------------
# Plugging into botocore
# ----------------------------------------------------------------------------------------------


def test_clients_made_before_install_are_answered_and_uninstall_hands_back_to_moto(aws):
    early = boto3.client("sagemaker", region_name=REGION)
    standin = SageMakerStandIn(region=REGION, account_id=ACCOUNT)
    standin.install()
    try:
        assert standin.installed
        with pytest.raises(ClientError) as err:
            early.describe_endpoint(EndpointName="nope")
        assert code_of(err.value) == "ValidationException"
        assert 'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nope"' in str(err.value)
        late = boto3.session.Session().client("sagemaker", region_name=REGION)
        assert late.list_endpoints()["Endpoints"] == []
    finally:
        standin.uninstall()
        standin.uninstall()  # idempotent
    assert not standin.installed
    # moto answers again: its describe_endpoint raises its own error (no stand-in message)
    with pytest.raises(ClientError) as err:
        early.describe_endpoint(EndpointName="nope")
    assert 'arn:aws:sagemaker:us-east-1:123456789012:endpoint/nope".' not in str(err.value)


def test_only_one_standin_at_a_time(standin):
    with pytest.raises(RuntimeError, match="another SageMakerStandIn"):
        SageMakerStandIn().install()


def test_unsupported_operations_are_named(sm, rt):
    with pytest.raises(ClientError) as err:
        sm.list_training_jobs()
    assert code_of(err.value) == "UnknownOperationException"
    assert "ListTrainingJobs" in str(err.value)
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint_async(EndpointName="x", InputLocation="s3://b/k")
    assert "InvokeEndpointAsync" in str(err.value)


def test_moto_never_sees_the_requests(sm, aws, data):
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("moto-blind", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=1, parallel=1)
    )
    wait_tuning(sm, "moto-blind")
    from moto.backends import get_backend

    backend = get_backend("sagemaker")[ACCOUNT][REGION]
    assert not backend.hyper_parameter_tuning_jobs


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _mutate(req: dict, path: str, value) -> dict:
    node = req
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return req


_DELETE = object()


VALIDATION_CASES = [
    ("HyperParameterTuningJobName", "a" * 33, "ValidationException", "length less than or equal to 32"),
    ("HyperParameterTuningJobName", "bad_name", "ValidationException", "regular expression pattern"),
    ("HyperParameterTuningJobName", "-lead", "ValidationException", "regular expression pattern"),
    (
        "TrainingJobDefinition.StaticHyperParameters",
        {"feature_dim": "2"},
        "ValidationException",
        "required hyperparameter [k]",
    ),
    (
        "TrainingJobDefinition.StaticHyperParameters",
        {"k": "4"},
        "ValidationException",
        "required hyperparameter [feature_dim]",
    ),
    (
        "TrainingJobDefinition.StaticHyperParameters",
        {"k": "0", "feature_dim": "2"},
        "ValidationException",
        "k='0' must be an integer >= 1",
    ),
    (
        "TrainingJobDefinition.StaticHyperParameters",
        {"k": "4", "feature_dim": "2", "num_trees": "3"},
        "ValidationException",
        "[num_trees] is not a hyperparameter of the kmeans algorithm",
    ),
    (
        "TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
        "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1",
        "ValidationException",
        "not the built-in K-Means algorithm",
    ),
    (
        "TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:latest",
        "ValidationException",
        "tag '1'",
    ),
    (
        "TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
        "174872318107.dkr.ecr.us-west-2.amazonaws.com/kmeans:1",
        "ValidationException",
        "region us-west-2",
    ),
    (
        "TrainingJobDefinition.AlgorithmSpecification.TrainingImage",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        "ValidationException",
        "382416733822",
    ),
    (
        "TrainingJobDefinition.AlgorithmSpecification.MetricDefinitions",
        [{"Name": "a", "Regex": "b"}],
        "ValidationException",
        "can't override the metric definitions",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"IntegerParameterRanges": [{"Name": "k", "MinValue": "2", "MaxValue": "5"}]},
        "ValidationException",
        "untunable hyperparameters: [k]",
    ),
    (  # SageMaker's K-Means tuning page lists epochs, extra_center_factor, init_method, mini_batch_size: never k
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"CategoricalParameterRanges": [{"Name": "k", "Values": ["8", "12", "16"]}]},
        "ValidationException",
        "untunable hyperparameters: [k]",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "5", "MaxValue": "2"}]},
        "ValidationException",
        "MinValue (5) of hyperparameter epochs must be less than or equal",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "0", "MaxValue": "100"}]},
        "ValidationException",
        "mini_batch_size='0' must be an integer >= 1",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"IntegerParameterRanges": [{"Name": "extra_center_factor", "MinValue": "1.5", "MaxValue": "4"}]},
        "ValidationException",
        "not an integer",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"CategoricalParameterRanges": [{"Name": "init_method", "Values": ["kmeans++", "forgy"]}]},
        "ValidationException",
        "init_method='forgy' must be one of kmeans++, random",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"ContinuousParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "4"}]},
        "ValidationException",
        "use an IntegerParameterRange",
    ),
    ("HyperParameterTuningJobConfig.ParameterRanges", {}, "ValidationException", "at least one"),
    (
        "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.MetricName",
        "validation:msd",
        "ValidationException",
        "isn't valid for the [kmeans] algorithm",
    ),
    (
        "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.Type",
        "Maximize",
        "ValidationException",
        "must be Minimize",
    ),
    (
        "HyperParameterTuningJobConfig.ParameterRanges",
        {"CategoricalParameterRanges": [{"Name": "init_method", "Values": ["kmeans++"]}]},
        "ValidationException",
        "The total number of hyperparameter combinations for the provided ranges [1.0] must be equal or greater "
        "than the value of MaxNumberOfJobs, [2]",
    ),
    ("HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs", 501, "ResourceLimitExceeded", "500"),
    (
        "HyperParameterTuningJobConfig.ResourceLimits.MaxNumberOfTrainingJobs",
        _DELETE,
        "ValidationException",
        "MaxNumberOfTrainingJobs is required",
    ),
    ("HyperParameterTuningJobConfig.Strategy", "Hyperband", "ValidationException", "Hyperband"),
    ("TrainingJobDefinition.InputDataConfig.1", _DELETE, "ValidationException", "add a channel named test"),
    (
        "TrainingJobDefinition.InputDataConfig.0.ChannelName",
        "training",
        "ValidationException",
        "Channel [training] is not supported",
    ),
    (
        "TrainingJobDefinition.InputDataConfig.0.ContentType",
        "application/json",
        "ValidationException",
        "Content type application/json is not supported",
    ),
    (
        "TrainingJobDefinition.InputDataConfig.0.DataSource.S3DataSource.S3Uri",
        "https://example.com/x",
        "ValidationException",
        "s3://bucket/prefix",
    ),
    ("TrainingJobDefinition.RoleArn", "arn:aws:iam::123456789012:user/someone", "ValidationException", "roleArn"),
    (
        "TrainingJobDefinition.OutputDataConfig.KmsKeyId",
        "arn:aws:kms:us-east-1:123456789012:key/missing",
        "ValidationException",
        "does not exist or is not accessible",
    ),
    ("TrainingJobDefinition.ResourceConfig.VolumeKmsKeyId", "alias/not-there", "ValidationException", "does not exist"),
    ("TrainingJobDefinition.ResourceConfig.InstanceType", "ml.m5d.large", None, None),
]


def test_create_tuning_job_validation(sm, aws, data):
    failures = []
    for path, value, code, message in VALIDATION_CASES:
        req = tuning_request("validate", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=2)
        req = _mutate(req, path, value)
        if code is None:  # NVMe instance types refuse a volume KMS key
            req["TrainingJobDefinition"]["ResourceConfig"]["VolumeKmsKeyId"] = aws.key
            code, message = "ValidationException", "local NVMe"
        try:
            sm.create_hyper_parameter_tuning_job(**req)
            failures.append(f"{path}={value!r}: accepted")
            continue
        except ClientError as err:
            got = (code_of(err), err.response["Error"]["Message"])
        if got[0] != code or message not in got[1]:
            failures.append(f"{path}={value!r}: got {got}, want {code} with {message!r}")
    assert failures == []
    with pytest.raises(ClientError) as err:  # nothing was created
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="validate")
    assert code_of(err.value) == "ResourceNotFound"


def test_duplicate_names_are_refused_case_insensitively(sm, aws, data):
    req = tuning_request("dup-Job", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=1, parallel=1)
    sm.create_hyper_parameter_tuning_job(**req)
    req["HyperParameterTuningJobName"] = "DUP-job"
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(**req)
    assert code_of(err.value) == "ResourceInUse"

    url = put_model(aws, "m/model.tar.gz", CENTERS)
    make_model_and_config(sm, "Dup", url)
    with pytest.raises(ClientError) as err:
        sm.create_model(ModelName="dup", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url})
    assert code_of(err.value) == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        f'Cannot create already existing model "arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/dup".'
    )
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName="DUP",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "Dup",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    assert "Cannot create already existing endpoint configuration" in str(err.value)
    sm.create_endpoint(EndpointName="Dup", EndpointConfigName="Dup")
    with pytest.raises(ClientError) as err:
        sm.create_endpoint(EndpointName="dUP", EndpointConfigName="Dup")
    assert code_of(err.value) == "ValidationException"
    assert "Cannot create already existing endpoint" in str(err.value)
    wait_tuning(sm, "dup-job")
    wait_endpoint(sm, "dup")


def test_not_found_errors_use_sagemakers_codes(sm, rt):
    cases = [
        (
            lambda: sm.describe_training_job(TrainingJobName="nope"),
            "ValidationException",
            "Requested resource not found.",
        ),
        (
            lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope"),
            "ResourceNotFound",
            "Amazon SageMaker can't find a tuning job with name nope",
        ),
        (
            lambda: sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope"),
            "ResourceNotFound",
            "can't find",
        ),
        (lambda: sm.describe_model(ModelName="nope"), "ValidationException", 'Could not find model "arn:aws:sagemaker'),
        (lambda: sm.delete_model(ModelName="nope"), "ValidationException", "Could not find model"),
        (
            lambda: sm.describe_endpoint_config(EndpointConfigName="nope"),
            "ValidationException",
            "Could not find endpoint configuration",
        ),
        (lambda: sm.delete_endpoint(EndpointName="nope"), "ValidationException", "Could not find endpoint"),
        (
            lambda: sm.update_endpoint(EndpointName="nope", EndpointConfigName="c"),
            "ValidationException",
            "Could not find endpoint",
        ),
        (
            lambda: sm.create_endpoint(EndpointName="e", EndpointConfigName="nope"),
            "ValidationException",
            "Could not find endpoint configuration",
        ),
        (
            lambda: sm.list_tags(ResourceArn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/nope"),
            "ValidationException",
            "not found",
        ),
    ]
    for call, code, message in cases:
        with pytest.raises(ClientError) as err:
            call()
        assert code_of(err.value) == code
        assert message in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="nope", ContentType="text/csv", Body=b"1,2")
    assert code_of(err.value) == "ValidationError"
    assert err.value.response["Error"]["Message"] == f"Endpoint nope of account {ACCOUNT} not found."


def test_create_model_checks_image_and_artifact(sm, aws):
    with pytest.raises(ClientError) as err:
        sm.create_model(
            ModelName="m",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/missing/model.tar.gz"},
        )
    assert err.value.response["Error"]["Message"] == f"Could not find model data at s3://{BUCKET}/missing/model.tar.gz."
    url = put_model(aws, "m/model.tar.gz", CENTERS)
    with pytest.raises(ClientError) as err:
        sm.create_model(
            ModelName="m",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
                "ModelDataUrl": url,
            },
        )
    assert "not the built-in K-Means" in str(err.value)
    with pytest.raises(ClientError) as err:
        sm.create_model(
            ModelName="bad--", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url}
        )
    assert "regular expression pattern" in str(err.value)
    arn = sm.create_model(
        ModelName="m",
        ExecutionRoleArn=ROLE,
        EnableNetworkIsolation=True,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url},
        Tags=[{"Key": "project", "Value": "kmeans"}],
    )["ModelArn"]
    d = sm.describe_model(ModelName="M")
    assert d["ModelArn"] == arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"
    assert d["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": url}
    assert d["EnableNetworkIsolation"] is True and d["ExecutionRoleArn"] == ROLE
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "project", "Value": "kmeans"}]


def test_endpoint_config_kms_validation_and_echo(sm, aws):
    url = put_model(aws, "m/model.tar.gz", CENTERS)
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url})
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": "m",
        "InstanceType": "ml.g4dn.xlarge",
        "InitialInstanceCount": 1,
    }
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant], KmsKeyId=aws.key)
    assert "local NVMe" in str(err.value)
    variant["InstanceType"] = "ml.m5.large"
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[variant],
            KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
        )
    assert "does not exist" in str(err.value)
    with pytest.raises(ClientError) as err:
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[dict(variant, ModelName="ghost")])
    assert 'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/ghost"' in str(err.value)
    arn = sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[variant], KmsKeyId=aws.key)[
        "EndpointConfigArn"
    ]
    d = sm.describe_endpoint_config(EndpointConfigName="c")
    assert d["EndpointConfigArn"] == arn and d["KmsKeyId"] == aws.key
    assert d["ProductionVariants"][0]["ModelName"] == "m"


# ----------------------------------------------------------------------------------------------
# Tuning jobs
# ----------------------------------------------------------------------------------------------


def test_tuning_job_searches_and_reports_like_sagemaker(sm, aws, data, checker):
    tags = [{"Key": "project", "Value": "kmeans"}, {"Key": "stage", "Value": "test"}]
    arn = sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            "search",
            train_uri=data.train_uri,
            test_uri=data.test_uri,
            kms_key=aws.key,
            max_jobs=8,
            parallel=2,
            tags=tags,
        )
    )["HyperParameterTuningJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hyper-parameter-tuning-job/search"
    first = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="search")
    assert first["HyperParameterTuningJobStatus"] == "InProgress"
    d = wait_tuning(sm, "search")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert d["TrainingJobStatusCounters"] == {
        "Completed": 8,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert d["ObjectiveStatusCounters"] == {"Succeeded": 8, "Pending": 0, "Failed": 0}
    assert isinstance(d["CreationTime"], datetime.datetime) and d["CreationTime"].tzinfo is not None
    assert d["HyperParameterTuningEndTime"] >= d["CreationTime"]
    assert d["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 8
    assert "FailureReason" not in d

    jobs = all_training_jobs(sm, "search")
    assert len(jobs) == 8
    names = sorted(j["TrainingJobName"] for j in jobs)
    for i, name in enumerate(names, start=1):
        assert re.fullmatch(rf"search-{i:03d}-[0-9a-f]{{8}}", name)
    configs = {tuple(sorted(j["TunedHyperParameters"].items())) for j in jobs}
    assert len(configs) == 8, "every training job tries different hyperparameters"
    for j in jobs:
        hp = j["TunedHyperParameters"]
        assert set(hp) == {"extra_center_factor", "mini_batch_size", "epochs", "init_method"}
        assert 2 <= int(hp["extra_center_factor"]) <= 10 and hp["extra_center_factor"].isdigit()
        assert 300 <= int(hp["mini_batch_size"]) <= 2000 and hp["mini_batch_size"].isdigit()
        assert 1 <= int(hp["epochs"]) <= 5
        assert hp["init_method"] in ("kmeans++", "random")
        assert j["ObjectiveStatus"] == "Succeeded"
        assert j["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "test:msd"
    best = min(jobs, key=lambda j: j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    bt = d["BestTrainingJob"]
    assert bt["TrainingJobName"] == best["TrainingJobName"]
    assert bt["TunedHyperParameters"] == best["TunedHyperParameters"]
    assert bt["FinalHyperParameterTuningJobObjectiveMetric"] == best["FinalHyperParameterTuningJobObjectiveMetric"]
    assert bt["TrainingJobStatus"] == "Completed"
    assert bt["TrainingJobArn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{best['TrainingJobName']}"

    # list: paging, sorting, filtering
    page = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="search", MaxResults=3)
    assert len(page["TrainingJobSummaries"]) == 3 and "NextToken" in page
    assert [j["TrainingJobName"] for j in page["TrainingJobSummaries"]] == names[:3]
    by_metric = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="search", SortBy="FinalObjectiveMetricValue", SortOrder="Ascending", MaxResults=100
    )
    values = [j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in by_metric["TrainingJobSummaries"]]
    assert values == sorted(values)
    assert (
        sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="search", StatusEquals="Failed"
        )["TrainingJobSummaries"]
        == []
    )

    # the best training job, its artifact (SSE-KMS with the request's key) and tags
    tj = sm.describe_training_job(TrainingJobName=bt["TrainingJobName"])
    assert tj["TrainingJobStatus"] == "Completed" and tj["SecondaryStatus"] == "Completed"
    assert tj["TuningJobArn"] == arn
    assert tj["HyperParameters"] == {
        "k": "4",
        "feature_dim": "2",
        "_tuning_objective_metric": "test:msd",
        **bt["TunedHyperParameters"],
    }
    metrics = {m["MetricName"]: m["Value"] for m in tj["FinalMetricDataList"]}
    assert set(metrics) == {"test:msd", "test:ssd"}
    assert metrics["test:msd"] == pytest.approx(bt["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert metrics["test:ssd"] == pytest.approx(metrics["test:msd"] * len(data.test))
    assert [t["Status"] for t in tj["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert tj["EnableNetworkIsolation"] is True
    assert tj["OutputDataConfig"]["KmsKeyId"] == aws.key
    artifact = tj["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/models/{bt['TrainingJobName']}/output/model.tar.gz"
    key = artifact.split(f"{BUCKET}/", 1)[1]
    head = aws.s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws.key
    centroids = read_model_tar_gz(aws.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert centroids.shape == (4, 2) and centroids.dtype == np.float32
    # each true center has a learned centroid close by
    assert np.abs(CENTERS[:, None, :] - centroids[None]).sum(-1).min(1).max() < 0.5
    msd = ((data.test[:, None, :] - centroids[None].astype(np.float64)) ** 2).sum(-1).min(1).mean()
    assert metrics["test:msd"] == pytest.approx(msd, rel=1e-6)
    assert sm.list_tags(ResourceArn=arn)["Tags"] == tags
    assert sm.list_tags(ResourceArn=tj["TrainingJobArn"])["Tags"] == tags
    assert {
        "DescribeHyperParameterTuningJob",
        "ListTrainingJobsForHyperParameterTuningJob",
        "DescribeTrainingJob",
        "CreateHyperParameterTuningJob",
        "ListTags",
    } <= checker.checked


def test_best_result_within_5_percent_of_scikit_learn(sm, aws):
    from sklearn.cluster import KMeans

    centers = np.array([[-20.0, -20.0], [-20.0, 15.0], [0.0, 0.0], [18.0, -12.0], [15.0, 20.0]])
    train, test = blobs(30000, seed=11, centers=centers, std=2.0), blobs(6000, seed=12, centers=centers, std=2.0)
    aws.s3.put_object(Bucket=BUCKET, Key="q/train/train.csv", Body=csv_bytes(train))
    aws.s3.put_object(Bucket=BUCKET, Key="q/test/test.csv", Body=csv_bytes(test))
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            "quality",
            train_uri=f"s3://{BUCKET}/q/train",
            test_uri=f"s3://{BUCKET}/q/test",
            static={"k": "5", "feature_dim": "2"},
            max_jobs=6,
            parallel=2,
            ranges={
                "IntegerParameterRanges": [
                    {"Name": "extra_center_factor", "MinValue": "4", "MaxValue": "10"},
                    {"Name": "mini_batch_size", "MinValue": "3000", "MaxValue": "15000"},
                    {"Name": "epochs", "MinValue": "1", "MaxValue": "10"},
                ],
                "CategoricalParameterRanges": [{"Name": "init_method", "Values": ["kmeans++", "random"]}],
            },
        )
    )
    d = wait_tuning(sm, "quality")
    best = d["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    train_r = np.loadtxt(io.BytesIO(csv_bytes(train)), delimiter=",")
    test_r = np.loadtxt(io.BytesIO(csv_bytes(test)), delimiter=",")
    ref = KMeans(n_clusters=5, n_init=10, random_state=0).fit(train_r)
    sk_msd = ((test_r[:, None, :] - ref.cluster_centers_[None]) ** 2).sum(-1).min(1).mean()
    assert best <= 1.05 * sk_msd, (best, sk_msd)
    assert best >= 0.95 * sk_msd  # and not suspiciously better


def test_the_same_seed_and_data_give_the_same_jobs_and_models(sm, aws, data):
    """With a RandomSeed, the proposals and every model depend on the request and the data alone: not on thread
    timing, nor on the training jobs' names (which hold a random suffix)."""

    def run(name: str, seed: int) -> list[tuple]:
        req = tuning_request(name, train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=6, parallel=3)
        req["HyperParameterTuningJobConfig"]["RandomSeed"] = seed
        sm.create_hyper_parameter_tuning_job(**req)
        assert wait_tuning(sm, name)["HyperParameterTuningJobStatus"] == "Completed"
        jobs = sorted(all_training_jobs(sm, name), key=lambda j: j["TrainingJobName"])
        out = []
        for job in jobs:
            described = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
            bucket, key = described["ModelArtifacts"]["S3ModelArtifacts"][len("s3://") :].split("/", 1)
            centroids = read_model_tar_gz(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            metric = job["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            out.append((job["TunedHyperParameters"], metric, centroids.tobytes()))
        return out

    first, again, other = run("seeded-a", 11), run("seeded-b", 11), run("seeded-c", 12)
    assert first == again
    assert [hp for hp, _, _ in first] != [hp for hp, _, _ in other]


def test_a_training_job_is_seeded_by_its_tuning_jobs_seed_and_its_hyperparameters():
    from offline.standin.training import training_seed

    hps = {"k": "4", "feature_dim": "2", "init_method": "random"}
    assert training_seed(11, hps) == training_seed(11, dict(reversed(list(hps.items()))))
    assert training_seed(11, hps) != training_seed(12, hps)
    assert training_seed(11, hps) != training_seed(11, {**hps, "init_method": "kmeans++"})


def test_random_and_grid_strategies(sm, data):
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            "rand",
            train_uri=data.train_uri,
            test_uri=data.test_uri,
            strategy="Random",
            max_jobs=3,
            parallel=3,
            objective="test:ssd",
        )
    )
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            "grid",
            train_uri=data.train_uri,
            test_uri=data.test_uri,
            strategy="Grid",
            max_jobs=2,
            parallel=2,
            ranges={"CategoricalParameterRanges": [{"Name": "init_method", "Values": ["kmeans++", "random"]}]},
        )
    )
    d = wait_tuning(sm, "rand")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert d["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == "test:ssd"
    d = wait_tuning(sm, "grid")
    assert sorted(j["TunedHyperParameters"]["init_method"] for j in all_training_jobs(sm, "grid")) == [
        "kmeans++",
        "random",
    ]


@pytest.mark.parametrize("seed", range(20))
def test_bayesian_search_tries_every_categorical_value_before_exploiting(seed):
    # Two first draws of init_method=random (bad on skewed data) must not leave the search stuck there.
    from offline.standin.service import _Range, _Searcher

    ranges = [
        _Range("extra_center_factor", "Integer", 4, 10),
        _Range("init_method", "Categorical", values=["kmeans++", "random"]),
    ]
    searcher = _Searcher(ranges, "Bayesian", max_jobs=6, rng=np.random.default_rng(seed))
    first = searcher.propose([], [])
    second = searcher.propose([], [first])
    assert {first["init_method"], second["init_method"]} == {"kmeans++", "random"}


BAD_DATA_CASES = [
    ({"train/a.csv": b"1,2\n3,abc\n"}, "text/csv;label_size=0", None, "could not convert 'abc' to a float"),
    ({"train/a.csv": b"1,2,3\n4,5,6\n"}, "text/csv;label_size=0", None, "has 3 feature columns"),
    ({"train/a.csv": b"1,2\n4,5,6\n"}, "text/csv;label_size=0", None, "has 3 feature columns"),
    ({"train/a.csv": b"1,2\n3,4\n"}, "text/csv", None, "has 1 feature columns (label_size=1)"),
    ({}, "text/csv;label_size=0", None, "no objects found under"),
    ({"train/a.csv": b""}, "text/csv;label_size=0", None, "No records found"),
    ({"train/a.csv": b"1,2\n3,4\n5,6\n"}, "text/csv;label_size=0", None, "fewer than k=4"),
    ({"train/a.csv": b"1,2\n3,4\n"}, None, None, "application/x-recordio-protobuf"),
    (
        {"train/a.csv": b"1,2\n3,4\n"},
        "text/csv;label_size=0",
        {"k": "1", "feature_dim": "2", "local_lloyd_tol": "x"},
        "local_lloyd_tol='x' must be a number",
    ),
]


def test_bad_data_fails_training_jobs_with_client_error(sm, aws, data):
    started = []
    for i, (files, content_type, static, reason) in enumerate(BAD_DATA_CASES):
        for key, body in files.items():
            aws.s3.put_object(Bucket=BUCKET, Key=f"bad{i}/{key}", Body=body)
        req = tuning_request(
            f"baddata{i}",
            train_uri=f"s3://{BUCKET}/bad{i}/train/",
            test_uri=data.test_uri,
            content_type=content_type,
            max_jobs=2,
            parallel=2,
            static=static,
        )
        if static and "local_lloyd_tol" in static:  # invalid static values are refused up front
            with pytest.raises(ClientError) as err:
                sm.create_hyper_parameter_tuning_job(**req)
            assert reason in str(err.value)
            continue
        if content_type is None:  # the test channel keeps its CSV content type
            req["TrainingJobDefinition"]["InputDataConfig"][1]["ContentType"] = "text/csv;label_size=0"
        sm.create_hyper_parameter_tuning_job(**req)
        started.append((f"baddata{i}", reason))
    for name, reason in started:
        d = wait_tuning(sm, name)
        assert d["HyperParameterTuningJobStatus"] == "Failed"
        assert d["FailureReason"] == (
            "No training job succeeded after 2 attempts. Please take a look at the "
            "training job failures to get more details."
        )
        assert "BestTrainingJob" not in d
        assert d["TrainingJobStatusCounters"]["NonRetryableError"] == 2
        assert d["ObjectiveStatusCounters"] == {"Succeeded": 0, "Pending": 0, "Failed": 2}
        for j in all_training_jobs(sm, name):
            assert j["TrainingJobStatus"] == "Failed"
            assert j["FailureReason"].startswith("ClientError: ")
            assert reason in j["FailureReason"], (name, j["FailureReason"])
            tj = sm.describe_training_job(TrainingJobName=j["TrainingJobName"])
            assert tj["FailureReason"] == j["FailureReason"] and "ModelArtifacts" not in tj


def test_csv_with_a_label_column_and_recordio_protobuf_channels_train(sm, aws, data):
    labelled = np.hstack([np.zeros((len(data.train), 1)), data.train])
    aws.s3.put_object(Bucket=BUCKET, Key="lab/train/a.csv", Body=csv_bytes(labelled))
    aws.s3.put_object(Bucket=BUCKET, Key="rio/train/a.pbr", Body=write_recordio_protobuf(data.train))
    aws.s3.put_object(Bucket=BUCKET, Key="rio/test/a.pbr", Body=write_recordio_protobuf(data.test))
    req = tuning_request(
        "labelled", train_uri=f"s3://{BUCKET}/lab/train/", test_uri=data.test_uri, max_jobs=1, parallel=1
    )
    req["TrainingJobDefinition"]["InputDataConfig"][0]["ContentType"] = "text/csv"
    sm.create_hyper_parameter_tuning_job(**req)
    sm.create_hyper_parameter_tuning_job(
        **tuning_request(
            "recordio",
            train_uri=f"s3://{BUCKET}/rio/train/",
            test_uri=f"s3://{BUCKET}/rio/test/",
            content_type="application/x-recordio-protobuf",
            max_jobs=1,
            parallel=1,
        )
    )
    for name in ("labelled", "recordio"):
        d = wait_tuning(sm, name)
        assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
        assert d["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] < 3.0


def test_warm_start_from_a_parent_tuning_job(sm, data):
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("parent", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=3, parallel=3)
    )
    req = tuning_request("child", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=3, parallel=1)
    req["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    with pytest.raises(ClientError) as err:  # the parent is still running
        sm.create_hyper_parameter_tuning_job(**req)
    assert code_of(err.value) == "ValidationException"
    wait_tuning(sm, "parent")
    sm.create_hyper_parameter_tuning_job(**req)
    d = wait_tuning(sm, "child")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert d["WarmStartConfig"] == req["WarmStartConfig"]
    parent = {tuple(sorted(j["TunedHyperParameters"].items())) for j in all_training_jobs(sm, "parent")}
    child = {tuple(sorted(j["TunedHyperParameters"].items())) for j in all_training_jobs(sm, "child")}
    assert not parent & child  # the child does not re-run what the parent tried
    req["HyperParameterTuningJobName"] = "orphan"
    req["WarmStartConfig"]["ParentHyperParameterTuningJobs"] = [{"HyperParameterTuningJobName": "ghost"}]
    with pytest.raises(ClientError) as err:
        sm.create_hyper_parameter_tuning_job(**req)
    assert code_of(err.value) == "ResourceNotFound"


def test_stop_tuning_job(sm, standin, data):
    standin.timing.training_job_min_seconds = 0.4
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("stopme", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=6, parallel=1)
    )
    time.sleep(0.1)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    d = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    assert d["HyperParameterTuningJobStatus"] in ("Stopping", "Stopped")
    d = wait_tuning(sm, "stopme")
    assert d["HyperParameterTuningJobStatus"] == "Stopped"
    jobs = all_training_jobs(sm, "stopme")
    assert len(jobs) == 1 and jobs[0]["TrainingJobStatus"] == "Stopped"
    assert d["TrainingJobStatusCounters"]["Stopped"] == 1
    with pytest.raises(ClientError) as err:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopme")
    assert code_of(err.value) == "ValidationException"


def test_uninstall_stops_running_work_promptly(aws, data):
    standin = SageMakerStandIn(
        region=REGION, account_id=ACCOUNT, timing=Timing(training_job_min_seconds=30, endpoint_seconds=30)
    )
    standin.install()
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("longrun", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=4, parallel=2)
    )
    time.sleep(0.2)
    started = time.monotonic()
    standin.uninstall()
    assert time.monotonic() - started < 3
    assert not [t for t in standin._threads if t.is_alive()]


# ----------------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------------


def test_fault_tuning_job_fails(sm, standin, data):
    standin.faults.tuning_job_fails = "InternalServerError: injected tuning failure"
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("tfail", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=2)
    )
    d = wait_tuning(sm, "tfail")
    assert d["HyperParameterTuningJobStatus"] == "Failed"
    assert d["FailureReason"] == "InternalServerError: injected tuning failure"
    assert "BestTrainingJob" not in d


def test_fault_training_jobs_fail(sm, standin, data):
    standin.faults = Faults(training_jobs_fail="AlgorithmError: injected")
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("jfail", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=10, parallel=2)
    )
    d = wait_tuning(sm, "jfail")
    assert d["HyperParameterTuningJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("No training job succeeded after ")
    assert "BestTrainingJob" not in d
    jobs = all_training_jobs(sm, "jfail")
    assert 5 <= len(jobs) <= 6  # SageMaker gives up after 5 failures without a success
    assert {j["FailureReason"] for j in jobs} == {"AlgorithmError: injected"}
    standin.faults = Faults()  # later jobs are unaffected
    sm.create_hyper_parameter_tuning_job(
        **tuning_request("jok", train_uri=data.train_uri, test_uri=data.test_uri, max_jobs=1, parallel=1)
    )
    assert wait_tuning(sm, "jok")["HyperParameterTuningJobStatus"] == "Completed"


def test_fault_endpoint_creation_fails(sm, standin, aws, rt):
    make_model_and_config(sm, "m1", put_model(aws, "m1/model.tar.gz", CENTERS))
    standin.faults.endpoint_creation_fails = "Injected: instance capacity unavailable"
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="m1")
    assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating"
    d = wait_endpoint(sm, "ep")
    assert d["EndpointStatus"] == "Failed"
    assert d["FailureReason"] == "Injected: instance capacity unavailable"
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"1,2")
    assert code_of(err.value) == "ValidationError"
    make_model_and_config(sm, "m2", put_model(aws, "m2/model.tar.gz", CENTERS))
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName="ep", EndpointConfigName="m2")
    assert code_of(err.value) == "ValidationException" and "Failed" in str(err.value)
    with pytest.raises(ClientError):
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="m1")
    sm.delete_endpoint(EndpointName="ep")
    _wait_gone(sm, "ep")


def _wait_gone(sm, name):
    deadline = time.monotonic() + 5
    while True:
        try:
            status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
            assert status == "Deleting"
        except ClientError as err:
            assert "Could not find endpoint" in str(err)
            return
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_fault_endpoint_update_fails_and_rolls_back(sm, standin, aws, rt):
    make_model_and_config(sm, "old", put_model(aws, "old/model.tar.gz", CENTERS))
    make_model_and_config(sm, "new", put_model(aws, "new/model.tar.gz", CENTERS + 100))
    sm.create_endpoint(EndpointName="ep", EndpointConfigName="old")
    assert wait_endpoint(sm, "ep")["EndpointStatus"] == "InService"
    standin.faults.endpoint_update_fails = "Injected: new fleet failed health checks"
    sm.update_endpoint(EndpointName="ep", EndpointConfigName="new")
    d = sm.describe_endpoint(EndpointName="ep")
    assert d["EndpointStatus"] == "Updating" and d["EndpointConfigName"] == "old"
    assert d["PendingDeploymentSummary"]["EndpointConfigName"] == "new"
    d = wait_endpoint(sm, "ep")
    assert d["EndpointStatus"] == "InService"
    assert d["EndpointConfigName"] == "old"
    assert d["FailureReason"] == "Injected: new fleet failed health checks"
    out = json.loads(rt.invoke_endpoint(EndpointName="ep", ContentType="text/csv", Body=b"-10,-10")["Body"].read())
    assert out["predictions"][0]["distance_to_cluster"] < 1  # still the old model


# ----------------------------------------------------------------------------------------------
# Endpoints
# ----------------------------------------------------------------------------------------------


def test_endpoint_lifecycle_create_update_delete(sm, aws, rt, checker):
    make_model_and_config(sm, "v1", put_model(aws, "v1/model.tar.gz", CENTERS), kms_key=aws.key)
    moved = CENTERS + np.array([100.0, 0.0])
    make_model_and_config(sm, "v2", put_model(aws, "v2/model.tar.gz", moved), kms_key=aws.key)
    arn = sm.create_endpoint(
        EndpointName="live", EndpointConfigName="v1", Tags=[{"Key": "project", "Value": "kmeans"}]
    )["EndpointArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/live"
    d = sm.describe_endpoint(EndpointName="live")
    assert d["EndpointStatus"] == "Creating"
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="live", ContentType="text/csv", Body=b"1,2")
    assert code_of(err.value) == "ValidationError"
    with pytest.raises(ClientError) as err:
        sm.delete_endpoint(EndpointName="live")
    assert err.value.response["Error"]["Message"] == f'Cannot update in-progress endpoint "{arn}".'
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName="live", EndpointConfigName="v2")
    assert "Cannot update in-progress endpoint" in str(err.value)
    d = wait_endpoint(sm, "live")
    assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == "v1" and "FailureReason" not in d
    assert d["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    assert d["ProductionVariants"][0]["DeployedImages"][0]["SpecifiedImage"] == IMAGE
    with pytest.raises(ClientError) as err:
        sm.update_endpoint(EndpointName="live", EndpointConfigName="v1")
    assert "needs a new EndpointConfig" in str(err.value)

    sm.update_endpoint(EndpointName="live", EndpointConfigName="v2")
    d = sm.describe_endpoint(EndpointName="live")
    assert d["EndpointStatus"] == "Updating" and d["EndpointConfigName"] == "v1"
    served = json.loads(rt.invoke_endpoint(EndpointName="live", ContentType="text/csv", Body=b"-10,-10")["Body"].read())
    assert served["predictions"][0]["distance_to_cluster"] < 1  # old fleet serves during the update
    d = wait_endpoint(sm, "live")
    assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == "v2" and "FailureReason" not in d
    served = json.loads(rt.invoke_endpoint(EndpointName="live", ContentType="text/csv", Body=b"90,-10")["Body"].read())
    assert served["predictions"][0] == {"closest_cluster": 0.0, "distance_to_cluster": 0.0}

    listed = sm.list_endpoints(NameContains="LIV")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["live"] and listed[0]["EndpointStatus"] == "InService"
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "project", "Value": "kmeans"}]
    sm.delete_endpoint(EndpointName="live")
    _wait_gone(sm, "live")
    with pytest.raises(ClientError):
        sm.list_tags(ResourceArn=arn)
    # configurations and models can be deleted (SageMaker allows it even while in use)
    sm.delete_endpoint_config(EndpointConfigName="v1")
    sm.delete_model(ModelName="v1")
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["v2"]
    assert [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]] == ["v2"]
    assert {
        "DescribeEndpoint",
        "ListEndpoints",
        "ListModels",
        "ListEndpointConfigs",
        "CreateEndpoint",
        "UpdateEndpoint",
        "DeleteEndpoint",
        "DeleteModel",
        "DeleteEndpointConfig",
    } <= checker.checked


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("model_algo-1", b"x")
    return buf.getvalue()


def test_endpoint_fails_on_missing_or_corrupt_artifact_and_update_rolls_back(sm, aws, rt):
    good = put_model(aws, "good/model.tar.gz", CENTERS)
    make_model_and_config(sm, "gone", put_model(aws, "gone/model.tar.gz", CENTERS))
    aws.s3.delete_object(Bucket=BUCKET, Key="gone/model.tar.gz")
    aws.s3.put_object(Bucket=BUCKET, Key="zip/model.tar.gz", Body=_zip_bytes())
    make_model_and_config(sm, "zip", f"s3://{BUCKET}/zip/model.tar.gz")
    make_model_and_config(sm, "good", good)

    sm.create_endpoint(EndpointName="gone", EndpointConfigName="gone")
    sm.create_endpoint(EndpointName="zip", EndpointConfigName="zip")
    sm.create_endpoint(EndpointName="good", EndpointConfigName="good")
    d = wait_endpoint(sm, "gone")
    assert d["EndpointStatus"] == "Failed"
    assert d["FailureReason"].startswith(
        f'Failed to download model data for container "container_1" from URL: "s3://{BUCKET}/gone/model.tar.gz".'
    )
    d = wait_endpoint(sm, "zip")
    assert d["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in d["FailureReason"] and "zip archive" in d["FailureReason"]
    assert wait_endpoint(sm, "good")["EndpointStatus"] == "InService"

    sm.update_endpoint(EndpointName="good", EndpointConfigName="zip")
    d = wait_endpoint(sm, "good")
    assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == "good"
    assert "zip archive" in d["FailureReason"]
    # a later successful update clears the failure
    make_model_and_config(sm, "good2", good)
    sm.update_endpoint(EndpointName="good", EndpointConfigName="good2")
    d = wait_endpoint(sm, "good")
    assert d["EndpointConfigName"] == "good2" and "FailureReason" not in d
    for name in ("gone", "zip", "good"):
        sm.delete_endpoint(EndpointName=name)


@pytest.fixture
def live(sm, aws):
    centroids = np.array([[0.5, 1.5], [10.25, -3.0], [-7.0, 8.0]], dtype=np.float32)
    make_model_and_config(sm, "serve", put_model(aws, "serve/model.tar.gz", centroids))
    sm.create_endpoint(EndpointName="serve", EndpointConfigName="serve")
    assert wait_endpoint(sm, "serve")["EndpointStatus"] == "InService"
    return centroids


def test_invoke_csv_json_jsonlines_match_numpy(rt, live):
    X = np.random.default_rng(5).normal(scale=8.0, size=(50, 2))
    want_idx, want_dist = numpy_predictions(X, live)
    csv = "\n".join(",".join(repr(float(v)) for v in row) for row in X)
    r = rt.invoke_endpoint(EndpointName="serve", ContentType="text/csv", Accept="application/json", Body=csv)
    assert r["ContentType"] == "application/json" and r["InvokedProductionVariant"] == "AllTraffic"
    preds = json.loads(r["Body"].read())["predictions"]
    assert [p["closest_cluster"] for p in preds] == [float(i) for i in want_idx]
    assert all(isinstance(p["closest_cluster"], float) for p in preds)
    np.testing.assert_allclose([p["distance_to_cluster"] for p in preds], want_dist, rtol=1e-6)

    body = json.dumps({"instances": [{"features": [float(a), float(b)]} for a, b in X]})
    r = rt.invoke_endpoint(EndpointName="serve", ContentType="application/json", Accept="application/json", Body=body)
    preds_json = json.loads(r["Body"].read())["predictions"]
    assert preds_json == preds

    lines = "\n".join(json.dumps({"features": [float(a), float(b)]}) for a, b in X)
    r = rt.invoke_endpoint(
        EndpointName="serve", ContentType="application/jsonlines", Accept="application/jsonlines", Body=lines
    )
    assert [json.loads(line) for line in r["Body"].read().decode().splitlines()] == preds

    r = rt.invoke_endpoint(
        EndpointName="serve",
        ContentType="application/x-recordio-protobuf",
        Accept="application/json",
        Body=write_recordio_protobuf(X),
    )
    np.testing.assert_allclose(
        [p["distance_to_cluster"] for p in json.loads(r["Body"].read())["predictions"]], want_dist, rtol=1e-5
    )


BAD_PAYLOADS = [
    ("text/csv", b"1,2\n3,x\n", 400, "could not convert 'x' to a float"),
    (
        "text/csv",
        b"1,2,3\n",
        400,
        "Feature size of csv inference data 3 is not consistent with feature size of trained model 2",
    ),
    ("text/csv", b"1,2\n3\n", 400, "line 2 has 1 columns"),
    ("application/json", b'{"instances": [{"features": [1, "a"]}]}', 400, "'a' is not a finite number"),
    ("application/json", b'{"rows": []}', 400, 'expected {"instances"'),
    ("application/json", b"{not json", 400, "invalid JSON"),
    ("text/csv", b"", 400, "no records"),
    ("application/x-npy", b"1,2", 415, "Content-type application/x-npy not supported"),
]


def test_invoke_bad_payloads_are_model_errors(rt, live):
    for content_type, body, status, message in BAD_PAYLOADS:
        with pytest.raises(ClientError) as err:
            rt.invoke_endpoint(EndpointName="serve", ContentType=content_type, Accept="application/json", Body=body)
        e = err.value.response
        assert e["Error"]["Code"] == "ModelError"
        assert e["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert e["OriginalStatusCode"] == status
        assert message in e["OriginalMessage"], (body, e["OriginalMessage"])
        assert e["Error"]["Message"].startswith(f"Received client error ({status}) from primary with message ")
        assert e["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/serve")


def test_invoke_body_limit(rt, live):
    ok = b"1,2" + b" " * (6291456 - 3)  # exactly 6 MB, cheap to parse
    r = rt.invoke_endpoint(EndpointName="serve", ContentType="text/csv", Body=ok)
    assert len(json.loads(r["Body"].read())["predictions"]) == 1
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="serve", ContentType="text/csv", Body=ok + b" ")
    assert code_of(err.value) == "ValidationError"
    assert "6291456" in str(err.value)


# ----------------------------------------------------------------------------------------------
# Throttling, tags, listing
# ----------------------------------------------------------------------------------------------


def test_throttling_seen_without_retries_and_absorbed_with_standard_retries(standin, aws):
    url = put_model(aws, "t/model.tar.gz", CENTERS)
    no_retry = session().client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
    retrying = boto3.client("sagemaker", region_name=REGION, config=Config(retries={"mode": "standard"}))
    standin.faults.throttle_creates = 1
    with pytest.raises(ClientError) as err:
        no_retry.create_model(
            ModelName="t1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url}
        )
    assert code_of(err.value) == "ThrottlingException"
    assert err.value.response["Error"]["Message"] == "Rate exceeded"
    no_retry.create_model(ModelName="t1", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url})
    # a new count for every Create* operation; describes are never throttled
    no_retry.describe_model(ModelName="t1")
    standin.faults = Faults(throttle_creates=2)
    r = retrying.create_model(
        ModelName="t2", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url}
    )
    assert r["ResponseMetadata"]["RetryAttempts"] == 2
    standin.faults.throttle_creates = 1  # changing the count restarts counting
    with pytest.raises(ClientError) as err:
        no_retry.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "t2",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    assert code_of(err.value) == "ThrottlingException"


def test_add_tags_and_list_paging(sm, aws):
    url = put_model(aws, "tg/model.tar.gz", CENTERS)
    for i in range(5):
        sm.create_model(
            ModelName=f"model-{i}", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": url}
        )
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/model-1"
    assert sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}])["Tags"] == [{"Key": "a", "Value": "1"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}, {"Key": "b", "Value": "2"}]
    with pytest.raises(ClientError) as err:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "x"}])
    assert "reserved" in str(err.value)
    names, kwargs = [], {"MaxResults": 2, "SortBy": "Name", "SortOrder": "Ascending"}
    while True:
        page = sm.list_models(**kwargs)
        names += [m["ModelName"] for m in page["Models"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert names == [f"model-{i}" for i in range(5)]
    newest_first = [m["ModelName"] for m in sm.list_models()["Models"]]
    assert newest_first == [f"model-{i}" for i in reversed(range(5))]
    with pytest.raises(ClientError):
        sm.list_models(NextToken="garbage")
