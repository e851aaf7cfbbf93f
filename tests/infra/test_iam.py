"""Every AWS call each step really makes (recorded during offline runs) is allowed by that function's role in
template.yaml, on the exact resource it touches, with the conditions the request carries: what moto cannot check
(it enforces no IAM), and a real deploy would.

S3 answers a GetObject or HeadObject of a missing key with 404 only when the caller may also s3:ListBucket the
bucket, and such a request carries no s3:prefix; otherwise with 403 AccessDenied. So every recorded read that found
its key missing also needs s3:ListBucket with no s3:prefix in the request's context."""

from __future__ import annotations

import fnmatch
import threading

import boto3
import pytest

from offline.__main__ import score_api
from offline.runner import OfflineAWS, current_invocation
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


class Outcomes:
    """Every AWS call a handler makes, with the error code it got (None when it succeeded)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict]] = []
        self.errors: dict[int, str | None] = {}
        self._lock = threading.Lock()

    def before(self, model, params, context, **_):
        invocation = current_invocation()
        if invocation is not None:
            with self._lock:
                context["iam_test_call"] = len(self.calls)
                self.calls.append((invocation.logical_id, model.service_model.service_name, model.name, dict(params)))

    def after(self, parsed, context, **_):
        if "iam_test_call" in context:
            code = (parsed or {}).get("Error", {}).get("Code")
            with self._lock:
                self.errors[context["iam_test_call"]] = code

    def missing_reads(self) -> list[tuple[str, str, str, dict]]:
        """GetObject/HeadObject calls that found no object (404 NoSuchKey; 403 where S3 would not tell)."""
        return [
            call
            for index, call in enumerate(self.calls)
            if call[2] in {"GetObject", "HeadObject"} and self.errors.get(index) in {"NoSuchKey", "404", "NotFound"}
        ]


def serving_report_key(aws: OfflineAWS) -> str:
    sm = aws.client("sagemaker")
    config = sm.describe_endpoint(EndpointName=aws.endpoint_name)["EndpointConfigName"]
    model = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    return f"reports/{model.rsplit('-', 1)[-1]}/report.json"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    sample = generate(tmp_path_factory.mktemp("iam"), rows=3000, seed=5)
    with OfflineAWS(faults=Faults(endpoint_creation_fails="injected")) as aws:
        outcomes = Outcomes()
        boto3.DEFAULT_SESSION.events.register("provide-client-params", outcomes.before)
        boto3.DEFAULT_SESSION.events.register("after-call", outcomes.after)
        aws.upload(sample.csv_path, KEY)
        assert aws.run(RUN, "iam-failed-endpoint").status == "FAILED"
        aws.standin.faults.endpoint_creation_fails = None
        assert aws.run(RUN, "iam-recreate").status == "SUCCEEDED"  # deletes the Failed endpoint, creates it
        assert aws.run(RUN, "iam-update").status == "SUCCEEDED"  # updates in place
        # The lifecycle rule expires the serving model's report (a delete marker, in the versioned bucket): the
        # scoring API answers 503 and the next run's gate falls back, both only if S3 says 404, not 403.
        aws.client("s3").delete_object(Bucket=aws.bucket, Key=serving_report_key(aws))
        answers = []
        caller = threading.Thread(target=lambda: answers.append(score_api(aws, "tranCode,Amount\n1,45.5\n")))
        caller.start()
        caller.join()
        assert answers[0][0] == 503, answers
        expired = aws.run(RUN, "iam-expired-report")
        assert expired.status == "SUCCEEDED", expired.cause
        # A caller of the scoring API (off the main thread, as the runner records handlers' calls).
        caller = threading.Thread(target=lambda: answers.append(score_api(aws, "tranCode,Amount\n1,45.5\n")))
        caller.start()
        caller.join()
        assert answers[1][0] == 200, answers
        # The drift check, as its schedule runs it (the window holds what the scoring API just scored).
        checks = []
        checker = threading.Thread(target=lambda: checks.append(aws.check_drift()))
        checker.start()
        checker.join()
        assert checks and checks[0]["records"] == 1, checks
        # A batch scored by hand: the plan, a range's worker and the summary (which removes its working files).
        aws.upload(b"id,tranCode,Amount\nt1,1,45.5\nt2,2,x\n", "score/iam.csv")
        batch = aws.run({"scoreKey": "score/iam.csv"}, "iam-batch", state_machine="ScoringStateMachine")
        assert batch.status == "SUCCEEDED", batch.cause
        arn = aws.start({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, "iam-schedule")
        aws.state_output(arn, "Resolve run configuration")
        aws.client("stepfunctions").stop_execution(executionArn=arn)
        yield aws, list(aws.api_calls), outcomes


def needed(call: tuple, aws: OfflineAWS) -> list[tuple]:
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
            return [("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": params.get("Prefix") or None})]
        if operation == "DeleteObjects":  # authorized as one DeleteObject per key
            return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if service == "dynamodb" and operation in {"PutItem", "UpdateItem", "DeleteItem", "GetItem"}:
        table = f"arn:aws:dynamodb:{aws.stack.region}:123456789012:table/{params['TableName']}"
        key = (params.get("Item") or params.get("Key"))["LockName"]["S"]
        via = {"kms:ViaService": f"dynamodb.{aws.stack.region}.amazonaws.com"}
        return [(f"dynamodb:{operation}", table, {"dynamodb:LeadingKeys": [key]})] + [
            (action, key_arn, via) for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")
        ]
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


def conditions_hold(statement: dict, context: dict[str, str | None]) -> bool:
    """Whether a statement's conditions hold for a request with these context keys. Keys the request's context
    names (None: the request carries no such key) are evaluated; keys it does not name are not modelled here."""
    for operator, tests in statement.get("Condition", {}).items():
        for key, wanted in tests.items():
            if key not in context:
                continue
            value, values = context[key], wanted if isinstance(wanted, list) else [wanted]
            if operator in {"StringLike", "ArnLike"}:
                ok = value is not None and any(fnmatch.fnmatchcase(value, str(v)) for v in values)
            elif operator in {"StringEquals", "ArnEquals"}:
                ok = value is not None and value in [str(v) for v in values]
            elif operator == "ForAllValues:StringEquals":  # every value the request carries is one of these
                ok = value is not None and all(v in [str(w) for w in values] for v in value)
            else:
                raise AssertionError(f"condition operator {operator} on {key} is not modelled: add it")
            if not ok:
                return False
    return True


def allows(statements: list[dict], action: str, resource: str, context: dict | None = None) -> dict | None:
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if (
            any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)
            and any(fnmatch.fnmatchcase(resource, r) for r in resources)
            and conditions_hold(statement, context or {})
        ):
            return statement
    return None


def test_the_offline_runs_exercised_every_step(recorded):
    _, calls, _ = recorded
    operations = {(function, operation) for function, _, operation, _ in calls}
    for expected in [
        ("ResolveRunFunction", "ListObjectsV2"),
        ("PlanDataFunction", "PutObject"),
        ("SplitRangeFunction", "PutObject"),
        ("MergeRangesFunction", "GetObject"),
        ("FinishDatasetFunction", "GetObject"),
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
        ("DeployLeaseFunction", "PutItem"),
        ("DeployLeaseFunction", "DeleteItem"),
        ("DeployEndpointFunction", "UpdateItem"),
        ("CheckEndpointFunction", "UpdateItem"),
        ("PlanScoresFunction", "DescribeEndpoint"),
        ("PlanScoresFunction", "PutObject"),
        # The scoring API found the serving model first; each function still finds it itself, as in AWS.
        ("PlanScoresFunction", "DescribeModel"),
        ("PlanScoresFunction", "DescribeModelPackage"),
        ("ScoreRangeFunction", "DescribeModel"),
        ("ScoreRangeFunction", "DescribeModelPackage"),
        ("ScoreRangeFunction", "InvokeEndpoint"),
        ("ScoreRangeFunction", "PutObject"),
        ("FinishScoresFunction", "DeleteObjects"),
        ("FinishScoresFunction", "ListObjectsV2"),
    ]:
        assert expected in operations, expected


def test_every_call_is_allowed_by_its_functions_role(recorded):
    aws, calls, _ = recorded
    missing = set()
    for call in calls:
        statements = role_statements(aws, call[0])
        for action, resource, *context in needed(call, aws):
            statement = allows(statements, action, resource, *context)
            if statement is None:
                missing.add(f"{call[0]}: {action} on {resource}")
            elif action == "iam:PassRole":
                assert statement["Condition"]["StringEquals"]["iam:PassedToService"] == "sagemaker.amazonaws.com"
            elif action == "cloudwatch:PutMetricData":
                assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == call[3]["Namespace"]
    assert not missing, "\n".join(sorted(missing))


def test_roles_do_not_reach_beyond_their_steps(recorded):
    """The check steps only read; only the deploy step may touch the endpoint."""
    aws, _, _ = recorded
    endpoint = f"arn:aws:sagemaker:{aws.stack.region}:123456789012:endpoint/{aws.endpoint_name}"
    for function in ("CheckTuningFunction", "CheckEndpointFunction", "ResolveRunFunction", "SplitRangeFunction"):
        statements = role_statements(aws, function)
        for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"):
            assert allows(statements, action, endpoint) is None, f"{function} may {action}"
        assert allows(statements, "iam:PassRole", aws.stack.outputs["SageMakerRoleArn"]) is None
    statements = role_statements(aws, "SplitRangeFunction")
    assert allows(statements, "s3:PutObject", f"arn:aws:s3:::{aws.bucket}/incoming/x.csv") is None
    assert allows(statements, "s3:DeleteObject", f"arn:aws:s3:::{aws.bucket}/incoming/x.csv") is None


def test_a_read_that_finds_its_key_missing_is_told_404_because_the_role_may_list_the_bucket(recorded):
    """An expired serving report: Evaluate falls back and the scoring API answers 503 only if S3 says 404, which it
    says only to a caller allowed s3:ListBucket for a request without s3:prefix (GetObject carries none)."""
    aws, _, outcomes = recorded
    missing_reads = outcomes.missing_reads()
    assert {call[0] for call in missing_reads} >= {"EvaluateModelFunction", "ScoreRecordsFunction"}
    denied = set()
    for function, _, _, params in missing_reads:
        if (
            allows(
                role_statements(aws, function), "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", {"s3:prefix": None}
            )
            is None
        ):
            denied.add(f"{function}: GetObject of missing {params['Key']} would be 403 AccessDenied, not 404")
    assert not denied, "\n".join(sorted(denied))


def test_a_prefix_condition_would_not_have_told_missing_from_denied():
    """The evaluator reads conditions: the policy before issue 21 (ListBucket only under reports/) fails the rule."""
    before = [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": ["datasets/*", "reports/*"]}},
        }
    ]
    assert allows(before, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "reports/x/"}) is not None
    assert allows(before, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": None}) is None
    assert allows(before, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "incoming/"}) is None


def test_the_lease_roles_reach_only_this_stacks_lease_item():
    """dynamodb:LeadingKeys pins each lease statement to the item deploy#<endpoint>: another key is refused."""
    from offline.runner import ROOT
    from offline.stack import StackBuilder

    template = StackBuilder(ROOT, "iam", "us-east-1").template
    for name in ("DeployLeaseTakePolicy", "DeployLeaseRenewPolicy"):
        (statement,) = [
            s
            for s in template["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
            if any(a.startswith("dynamodb:") for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
        ]
        condition = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        assert condition == [{"Fn::Sub": "deploy#${NamePrefix}-${EnvironmentName}"}]
    rule = {
        "Effect": "Allow",
        "Action": "dynamodb:PutItem",
        "Resource": "t",
        "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["deploy#kmeans-dev"]}},
    }
    assert allows([rule], "dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ["deploy#kmeans-dev"]})
    assert not allows([rule], "dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ["deploy#other"]})
