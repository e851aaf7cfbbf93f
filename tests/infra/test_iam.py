"""Every AWS call each step really makes (recorded during offline runs) is allowed by that function's role in
template.yaml, on the exact resource it touches: what moto cannot check, and a real deploy would."""

from __future__ import annotations

import fnmatch
import threading

import pytest

from offline.__main__ import score_api
from offline.runner import OfflineAWS
from offline.sample_data import generate
from offline.standin import Faults

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
RUN = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 2, "k": 3, "gateTolerancePercent": 1000}  # always deploy
PACKAGE_OPERATIONS = {"CreateModelPackage", "DescribeModelPackage", "UpdateModelPackage"}
SAGEMAKER_TYPES = {
    "HyperParameterTuningJobName": "hyper-parameter-tuning-job",
    "TrainingJobName": "training-job",
    "ModelName": "model",
    "EndpointConfigName": "endpoint-config",
    "EndpointName": "endpoint",
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    sample = generate(tmp_path_factory.mktemp("iam"), rows=3000, seed=5)
    with OfflineAWS(faults=Faults(endpoint_creation_fails="injected")) as aws:
        aws.upload(sample.csv_path, KEY)
        assert aws.run(RUN, "iam-failed-endpoint").status == "FAILED"
        aws.standin.faults.endpoint_creation_fails = None
        assert aws.run(RUN, "iam-recreate").status == "SUCCEEDED"  # deletes the Failed endpoint, creates it
        assert aws.run(RUN, "iam-update").status == "SUCCEEDED"  # updates in place
        # A caller of the scoring API (off the main thread, as the runner records handlers' calls).
        answers = []
        caller = threading.Thread(target=lambda: answers.append(score_api(aws, "tranCode,Amount\n1,45.5\n")))
        caller.start()
        caller.join()
        assert answers[0][0] == 200, answers
        # The drift check, as its schedule runs it (the window holds what the scoring API just scored).
        checks = []
        checker = threading.Thread(target=lambda: checks.append(aws.check_drift()))
        checker.start()
        checker.join()
        assert checks and checks[0]["records"] == 1, checks
        arn = aws.start({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, "iam-schedule")
        aws.state_output(arn, "Resolve run configuration")
        aws.client("stepfunctions").stop_execution(executionArn=arn)
        yield aws, list(aws.api_calls)


def needed(call: tuple, aws: OfflineAWS) -> list[tuple[str, str]]:
    """The IAM (action, resource) pairs a recorded API call is authorized against."""
    _, service, operation, params = call
    prefix = f"arn:aws:sagemaker:{aws.stack.region}:123456789012"
    key_arn = aws.kms_key_arn
    if service == "sagemaker" and operation in {"ListModels", "ListEndpointConfigs"}:
        return [(f"sagemaker:{operation}", "*")]  # no resource-level permission
    if service == "sagemaker" and operation in PACKAGE_OPERATIONS:
        # A version is named by its ARN or <group>/<version>; CreateModelPackage by its group.
        name = params.get("ModelPackageName") or params.get("ModelPackageArn")
        arn = (
            f"{prefix}:model-package/{name.split(':model-package/')[-1].lower()}"
            if name
            else f"{prefix}:model-package-group/{params['ModelPackageGroupName'].lower()}"
        )
        pairs = [(f"sagemaker:{operation}", arn)]
        if params.get("Tags"):
            pairs.append(("sagemaker:AddTags", arn))
        return pairs
    if service == "sagemaker":
        field = next(f for f in SAGEMAKER_TYPES if f in params)  # the first named resource is the primary one
        arn = f"{prefix}:{SAGEMAKER_TYPES[field]}/{params[field].lower()}"
        pairs = [(f"sagemaker:{operation}", arn)]
        package = (params.get("PrimaryContainer") or {}).get("ModelPackageName")
        if operation == "CreateModel" and package:  # CreateModel reads the registered version it is made from
            pairs.append(("sagemaker:CreateModel", f"{prefix}:model-package/{package.split(':model-package/')[-1]}"))
        if params.get("Tags"):
            pairs.append(("sagemaker:AddTags", arn))
        for role in (params.get("TrainingJobDefinition", {}).get("RoleArn"), params.get("ExecutionRoleArn")):
            if role:
                pairs.append(("iam:PassRole", role))
        return pairs
    if service == "s3":
        bucket, key = params["Bucket"], params.get("Key")
        if operation in {"HeadObject", "GetObject"}:
            action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
            return [(action, f"arn:aws:s3:::{bucket}/{key}"), ("kms:Decrypt", key_arn)]
        if operation in {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}:
            return [("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"), ("kms:GenerateDataKey", key_arn)]
        if operation in {"ListObjectsV2", "ListObjects"}:
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}")]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [("cloudwatch:PutMetricData", "*")]  # no resource type: the namespace condition is checked below
    if service == "sagemaker-runtime" and operation == "InvokeEndpoint":
        return [("sagemaker:InvokeEndpoint", f"{prefix}:endpoint/{params['EndpointName'].lower()}")]
    raise AssertionError(f"no IAM mapping for {service}:{operation}: add one")


def role_statements(aws: OfflineAWS, function: str) -> list[dict]:
    template, resolve = aws.builder.template, aws.builder.resolve
    role_ref = template["Resources"][function]["Properties"]["Role"]
    role = (
        role_ref["Fn::GetAtt"][0] if isinstance(role_ref["Fn::GetAtt"], list) else role_ref["Fn::GetAtt"].split(".")[0]
    )
    documents = [p["PolicyDocument"] for p in template["Resources"][role]["Properties"].get("Policies", [])]
    documents += [
        spec["Properties"]["PolicyDocument"]
        for spec in template["Resources"].values()
        if spec["Type"] == "AWS::IAM::Policy" and {"Ref": role} in spec["Properties"]["Roles"]
    ]
    return [s for d in documents for s in resolve(d)["Statement"]]


def allows(statements: list[dict], action: str, resource: str) -> dict | None:
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            return statement
    return None


def test_the_offline_runs_exercised_every_step(recorded):
    _, calls = recorded
    operations = {(function, operation) for function, _, operation, _ in calls}
    for expected in [
        ("ResolveRunFunction", "ListObjectsV2"),
        ("PrepareDataFunction", "PutObject"),
        ("StartTuningFunction", "CreateHyperParameterTuningJob"),
        ("CheckTuningFunction", "DescribeTrainingJob"),
        ("CreateModelFunction", "CreateEndpointConfig"),
        ("DeployEndpointFunction", "DeleteEndpoint"),
        ("DeployEndpointFunction", "UpdateEndpoint"),
        ("CheckEndpointFunction", "DescribeEndpoint"),
        ("CleanUpFunction", "ListEndpointConfigs"),
        ("EvaluateModelFunction", "DescribeModel"),
        ("EvaluateModelFunction", "PutObject"),
        ("VerifyEndpointFunction", "InvokeEndpoint"),
        ("ScoreRecordsFunction", "DescribeEndpoint"),
        ("ScoreRecordsFunction", "DescribeModel"),
        ("ScoreRecordsFunction", "GetObject"),
        ("ScoreRecordsFunction", "InvokeEndpoint"),
        ("ScoreRecordsFunction", "PutObject"),
        ("CheckDriftFunction", "DescribeEndpoint"),
        ("CheckDriftFunction", "ListObjectsV2"),
        ("CheckDriftFunction", "GetObject"),
        ("CheckDriftFunction", "PutMetricData"),
        ("RecordVersionFunction", "CreateModelPackage"),
        ("RecordVersionFunction", "UpdateModelPackage"),
        ("RecordVersionFunction", "DescribeModelPackage"),
        ("EvaluateModelFunction", "DescribeModelPackage"),
        ("ScoreRecordsFunction", "DescribeModelPackage"),
        ("CheckDriftFunction", "DescribeModelPackage"),
    ]:
        assert expected in operations


def test_every_call_is_allowed_by_its_functions_role(recorded):
    aws, calls = recorded
    missing = set()
    for call in calls:
        statements = role_statements(aws, call[0])
        for action, resource in needed(call, aws):
            statement = allows(statements, action, resource)
            if statement is None:
                missing.add(f"{call[0]}: {action} on {resource}")
            elif action == "iam:PassRole":
                assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"
            elif action == "cloudwatch:PutMetricData":
                assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == call[3]["Namespace"]
    assert not missing, "\n".join(sorted(missing))


def test_roles_do_not_reach_beyond_their_steps(recorded):
    """The check steps only read; only the deploy step may touch the endpoint."""
    aws, _ = recorded
    endpoint = f"arn:aws:sagemaker:{aws.stack.region}:123456789012:endpoint/{aws.endpoint_name}"
    for function in ("CheckTuningFunction", "CheckEndpointFunction", "ResolveRunFunction", "PrepareDataFunction"):
        statements = role_statements(aws, function)
        for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"):
            assert allows(statements, action, endpoint) is None, f"{function} may {action}"
        assert allows(statements, "iam:PassRole", aws.stack.outputs["SageMakerRoleArn"]) is None
    statements = role_statements(aws, "PrepareDataFunction")
    assert allows(statements, "s3:PutObject", f"arn:aws:s3:::{aws.bucket}/incoming/x.csv") is None
    assert allows(statements, "s3:DeleteObject", f"arn:aws:s3:::{aws.bucket}/incoming/x.csv") is None
