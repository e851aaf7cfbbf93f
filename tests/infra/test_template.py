"""template.yaml: linters, security settings, tags and wiring, read from the template itself (and from what the
SAM transform makes of it), never restated."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.aws import require

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "pipeline.asl.json"
TAGS = {"Project": "NamePrefix", "Environment": "EnvironmentName", "Owner": "Owner"}
KEY_ARN = {"Fn::If": ["CreateKey", {"Fn::GetAtt": ["Key", "Arn"]}, {"Ref": "KmsKeyArn"}]}
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}
FUNCTIONS = {
    "ResolveRunFunction": "functions/resolve_run/",
    "PlanDataFunction": "functions/plan_data/",
    "SplitRangeFunction": "functions/split_range/",
    "MergeRangesFunction": "functions/merge_ranges/",
    "TreatRangeFunction": "functions/treat_range/",
    "FinishDatasetFunction": "functions/finish_dataset/",
    "StartTuningFunction": "functions/start_tuning/",
    "CheckTuningFunction": "functions/check_tuning/",
    "EvaluateModelFunction": "functions/evaluate_model/",
    "CreateModelFunction": "functions/create_model/",
    "DeployEndpointFunction": "functions/deploy_endpoint/",
    "CheckEndpointFunction": "functions/check_endpoint/",
    "VerifyEndpointFunction": "functions/verify_endpoint/",
    "CleanUpFunction": "functions/clean_up/",
    "ScoreRecordsFunction": "functions/score_records/",
    "CheckDriftFunction": "functions/check_drift/",
    "RecordVersionFunction": "functions/record_version/",
    "DeployLeaseFunction": "functions/deploy_lease/",
    "PlanScoresFunction": "functions/plan_scores/",
    "ScoreRangeFunction": "functions/score_range/",
    "FinishScoresFunction": "functions/finish_scores/",
}
# Batch scoring's functions: its own state machine invokes them.
BATCH_FUNCTIONS = ["PlanScoresFunction", "ScoreRangeFunction", "FinishScoresFunction"]
# The data step's functions that write the run's dataset (the finish step only reads it).
DATA_STEP_WRITERS = ["PlanDataFunction", "SplitRangeFunction", "MergeRangesFunction", "TreatRangeFunction"]
# What the pipeline invokes: every function but the scoring API (callers invoke it through its URL), the drift check
# (its schedule invokes it) and batch scoring's.
STEP_FUNCTIONS = [
    name for name in FUNCTIONS if name not in {"ScoreRecordsFunction", "CheckDriftFunction", *BATCH_FUNCTIONS}
]
ENVIRONMENT = {
    "DEPLOY_LEASE_TABLE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
    "NAME_PREFIX",
    "ENDPOINT_NAME",
    "DATA_BUCKET",
    "KMS_KEY_ARN",
    "SAGEMAKER_ROLE_ARN",
    "KMEANS_IMAGE_URI",
    "TRAINING_INSTANCE_TYPE",
    "HOSTING_INSTANCE_TYPE",
    "DEFAULT_K",
    "MAX_TRAINING_JOBS",
    "MAX_PARALLEL_TRAINING_JOBS",
    "FEATURE_COLUMNS",
    "MAX_INPUT_MEGABYTES",
    "RANGE_KILOBYTES",
    "SHARD_MEGABYTES",
    "TRAINING_INSTANCE_COUNT",
    "KEEP_MODELS",
    "DEFAULT_POLL_SECONDS",
    "RESOURCE_TAGS",
    "ANOMALY_PERCENTILE",
    "GATE_TOLERANCE_PERCENT",
    "APPROVAL_REQUIRED",
    "APPROVAL_TIMEOUT_HOURS",
    "ENDPOINT_CHECK_ROWS",
    "DRIFT_WINDOW_MINUTES",
    "DRIFT_MIN_RECORDS",
    "DRIFT_PSI_THRESHOLD",
    "DRIFT_FLAGGED_P_VALUE",
}
# The evaluation, gate, approval and endpoint-check parameters: (environment variable, Type, Default, range).
EVALUATION_PARAMETERS = {
    "AnomalyPercentile": ("ANOMALY_PERCENTILE", "Number", 99, (50, 99.99)),
    "GateTolerancePercent": ("GATE_TOLERANCE_PERCENT", "Number", 5, (0, 1000)),
    "ApprovalRequired": ("APPROVAL_REQUIRED", "String", "false", ["true", "false"]),
    "ApprovalTimeoutHours": ("APPROVAL_TIMEOUT_HOURS", "Number", 24, (1, 168)),
    "EndpointCheckRows": ("ENDPOINT_CHECK_ROWS", "Number", 1000, (10, 100000)),
}
# Actions that have no resource-level permission, so that "*" is the only Resource they take.
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "sagemaker:ListModels",
    "sagemaker:ListEndpointConfigs",
}
# No role attaches an AWS managed policy: every role, the state machine's too, is written out in the template.
ALLOWED_MANAGED_POLICIES: set[str] = set()
EBS_ONLY_FAMILIES = {"t2", "t3", "m4", "m5", "c4", "c5", "r5", "m6i", "c6i", "r6i"}


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resources(template) -> dict[str, dict[str, Any]]:
    return template["Resources"]


@pytest.fixture(scope="module")
def raw_lines() -> list[str]:
    return TEMPLATE.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def transformed(template) -> dict[str, Any]:
    """What CloudFormation's SAM transform makes of the template (local paths stand in for `sam package`)."""
    require("samtranslator")
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):
                properties[key] = "s3://packaged-artifacts/" + properties[key].strip("/")
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    return translator.translate(packaged, parameter_values={}, get_managed_policy_map=lambda: {})


# -- helpers ----------------------------------------------------------------------------------------------------
def statements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy statement anywhere under `node`, with where it is."""
    if isinstance(node, dict):
        if isinstance(node.get("Statement"), list):
            for index, statement in enumerate(node["Statement"]):
                yield f"{path}/Statement/{index}", statement
        for key, value in node.items():
            if key != "Statement":
                yield from statements(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from statements(value, f"{path}/{index}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}


def evaluate(value: Any, template: dict[str, Any]) -> Any:
    """Resolve Ref/Sub to strings with the parameters' defaults; a function's Ref is its FunctionName."""
    params = {**defaults(template), **PSEUDO}

    def ref(name: str) -> str:
        if name in params:
            return params[name]
        resource = template["Resources"][name]
        return evaluate(resource["Properties"]["FunctionName"], template)

    if isinstance(value, dict) and list(value) == ["Ref"]:
        name = value["Ref"]
        if name in params or "FunctionName" in template["Resources"].get(name, {}).get("Properties", {}):
            return ref(name)
        return value
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: ref(m.group(1)), value["Fn::Sub"])
    return value


def role_statements(resources: dict[str, dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """The statements of a role's inline policies and of the AWS::IAM::Policy resources attached to it."""
    found = [s for _, s in statements(resources[role]["Properties"].get("Policies", []))]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            found += [s for _, s in statements(resource["Properties"]["PolicyDocument"])]
    return found


def allows(stmts: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in stmts if s["Effect"] == "Allow" and action in as_list(s["Action"])]


def resource_name(resource: Any) -> str:
    """A statement's resource as short text: a Sub's string, Logical.Attribute, Ref:Logical, "Key" or "*"."""
    if resource == KEY_ARN:
        return "Key"
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        return resource["Fn::Sub"]
    if "Fn::GetAtt" in resource:
        return ".".join(resource["Fn::GetAtt"])
    if "Ref" in resource:
        return f"Ref:{resource['Ref']}"
    raise AssertionError(f"unexpected resource {resource}")


def grants(stmts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every action a role is allowed, with the resources it is allowed on."""
    found: dict[str, set[str]] = {}
    for statement in stmts:
        assert statement["Effect"] == "Allow", statement
        for action in as_list(statement["Action"]):
            found.setdefault(action, set()).update(resource_name(r) for r in as_list(statement["Resource"]))
    return found


# -- linters ----------------------------------------------------------------------------------------------------
@pytest.mark.slow  # an external linter; `make lint` runs it on its own
def test_cfn_lint_with_serverless_rules_reports_nothing():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            str(TEMPLATE),
            "-a",
            "cfn_lint_serverless.rules",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def _sam_cli() -> str | None:
    candidates = [os.environ.get("SAM_CLI"), str(Path(sys.executable).parent / "sam"), shutil.which("sam")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.slow  # an external linter; `make lint` runs it on its own
def test_sam_validate_lint_passes():
    sam = _sam_cli()
    if sam is None:
        if os.environ.get("CI"):
            pytest.fail("the SAM CLI is missing: pip install -e '.[dev]' installs aws-sam-cli")
        pytest.skip("the SAM CLI is not installed (aws-sam-cli, a development dependency)")
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    result = subprocess.run(
        [sam, "validate", "--lint", "--template", str(TEMPLATE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# -- tags -------------------------------------------------------------------------------------------------------
def test_every_taggable_resource_after_the_sam_transform_has_the_stack_tags(transformed):
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    taggable = set()
    for logical_id, resource in transformed["Resources"].items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        if not (schema.get("tagging") or {}).get("taggable"):
            continue
        taggable.add(resource["Type"])
        tags = resource.get("Properties", {}).get("Tags")
        assert isinstance(tags, list), f"{logical_id} ({resource['Type']}) has no Tags"
        given = {tag["Key"]: tag["Value"] for tag in tags}
        for key, parameter in TAGS.items():
            assert given.get(key) == {"Ref": parameter}, f"{logical_id} lacks tag {key}"
    # The transform made roles, functions and the state machine; all of them count.
    assert {
        "AWS::KMS::Key",
        "AWS::S3::Bucket",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::StepFunctions::StateMachine",
        "AWS::Events::Rule",
        "AWS::SQS::Queue",
        "AWS::CloudWatch::Alarm",
    } <= taggable


def test_sagemaker_resources_get_the_stack_tags_from_the_environment(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    tags = json.loads(evaluate(variables["RESOURCE_TAGS"], template))
    assert tags == {"Project": "kmeans", "Environment": "dev", "Owner": "ml-platform"}
    assert template["Globals"]["Function"]["Tags"] == {key: {"Ref": p} for key, p in TAGS.items()}


# -- IAM --------------------------------------------------------------------------------------------------------
def test_every_wildcard_resource_has_a_comment_right_above_it(template, raw_lines):
    wildcard_lines = []
    for number, line in enumerate(raw_lines):
        if re.match(r"^\s*(-\s*)?(Resource:\s*)?[\"']\*[\"']\s*$", line):
            assert "Resource:" in line, f'line {number + 1}: write a wildcard resource as Resource: "*"'
            wildcard_lines.append(number)
            above = raw_lines[number - 1].strip()
            assert above.startswith("#"), f'line {number + 1}: Resource "*" without a comment right above it'
    in_template = sum(1 for _, s in statements(template["Resources"]) if "*" in as_list(s.get("Resource", [])))
    assert len(wildcard_lines) == in_template  # no "*" hidden in another YAML spelling


def test_no_allow_statement_uses_a_wildcard_action(transformed):
    for path, statement in statements(transformed["Resources"]):
        assert "NotAction" not in statement and "NotResource" not in statement, path
        if statement["Effect"] != "Allow":
            continue  # a Deny may cover a whole service (deny s3:* without TLS)
        actions = as_list(statement["Action"])
        if statement.get("Sid") == "EnableIamPolicies" and path.startswith("/Key/Properties/KeyPolicy"):
            # The key policy's account statement, as AWS writes it: it lets IAM policies grant the key.
            assert actions == ["kms:*"] and statement["Principal"] == {
                "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
            }
            continue
        for action in actions:
            assert "*" not in action, f"{path}: wildcard action {action}"


def test_wildcard_resources_only_for_actions_without_resource_level_permissions(transformed):
    for path, statement in statements(transformed["Resources"]):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
            continue
        if path.startswith("/Key/Properties/KeyPolicy"):
            continue  # in a key policy "*" is the key itself
        assert set(as_list(statement["Action"])) <= NO_RESOURCE_LEVEL, path
    for logical_id, resource in transformed["Resources"].items():
        for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []):
            assert arn in ALLOWED_MANAGED_POLICIES, f"{logical_id} attaches {arn}"


def test_pass_role_only_passes_the_sagemaker_role_to_sagemaker(transformed):
    passing = []
    for path, statement in statements(transformed["Resources"]):
        if "iam:PassRole" not in as_list(statement.get("Action", [])):
            continue
        passing.append(path.split("/")[1])
        assert as_list(statement["Action"]) == ["iam:PassRole"], path
        assert statement["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}, path
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}, path
    assert sorted(passing) == ["CreateModelFunctionRole", "StartTuningFunctionRole"]


def test_sagemaker_role_is_trusted_by_sagemaker_only_and_reaches_only_its_prefixes(resources):
    role = resources["SageMakerExecutionRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    stmts = role_statements(resources, "SageMakerExecutionRole")
    (listing,) = allows(stmts, "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "datasets/*"}}
    reads = {r["Fn::Sub"] for s in allows(stmts, "s3:GetObject") for r in as_list(s["Resource"])}
    assert reads == {"${DataBucket.Arn}/datasets/*", "${DataBucket.Arn}/models/*"}
    (writes,) = allows(stmts, "s3:PutObject")
    assert writes["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/models/*"}
    (metrics,) = allows(stmts, "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
    (pull,) = allows(stmts, "ecr:BatchGetImage")
    assert "repository/kmeans" in pull["Resource"]["Fn::Sub"][0]
    assert allows(stmts, "kms:Decrypt")[0]["Resource"] == KEY_ARN


def test_function_roles_reach_only_their_own_resources(resources, template):
    prefix = "${NamePrefix}-${EnvironmentName}"
    stmts = {name: role_statements(resources, f"{name}Role") for name in FUNCTIONS}
    (listing,) = allows(stmts["ResolveRunFunction"], "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "incoming/*"}}
    for name in DATA_STEP_WRITERS:
        (put,) = allows(stmts[name], "s3:PutObject")
        assert put["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/datasets/*"}, name
    assert not allows(stmts["FinishDatasetFunction"], "s3:PutObject")
    # Only a range read again deletes, and only the shards it wrote under datasets/; the merge only the channel
    # shards of a range a record of the range before covers whole (and batch scoring's summary, under scores/).
    deleting = {name: allows(stmts[name], "s3:DeleteObject") for name in FUNCTIONS}
    assert {name for name, found in deleting.items() if found} == {
        "SplitRangeFunction",
        "MergeRangesFunction",
        "FinishScoresFunction",
    }
    assert [d["Resource"] for d in deleting["SplitRangeFunction"]] == [{"Fn::Sub": "${DataBucket.Arn}/datasets/*"}]
    assert [d["Resource"] for d in deleting["MergeRangesFunction"]] == [
        [{"Fn::Sub": "${DataBucket.Arn}/datasets/*/train/*"}, {"Fn::Sub": "${DataBucket.Arn}/datasets/*/test/*"}]
    ]
    sagemaker_arns = [
        r
        for s in (x for v in stmts.values() for x in v)
        for r in as_list(s["Resource"])
        if any(a.startswith("sagemaker:") for a in as_list(s["Action"]))
        and r != "*"  # List actions, which have no resource-level permission (commented in the template)
    ]
    assert sagemaker_arns and all(prefix in arn["Fn::Sub"] for arn in sagemaker_arns)
    endpoint = f"arn:${{AWS::Partition}}:sagemaker:${{AWS::Region}}:${{AWS::AccountId}}:endpoint/{prefix}"
    for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint"):
        targets = {
            r["Fn::Sub"] for s in allows(stmts["DeployEndpointFunction"], action) for r in as_list(s["Resource"])
        }
        assert endpoint in targets
    (describe,) = allows(stmts["CheckEndpointFunction"], "sagemaker:DescribeEndpoint")
    assert describe["Resource"] == {"Fn::Sub": endpoint}
    for name in FUNCTIONS:
        assert allows(stmts[name], "kms:Decrypt"), f"{name} cannot decrypt its environment"
        (logs,) = allows(stmts[name], "logs:PutLogEvents")
        log_group = evaluate(resources[name]["Properties"]["LoggingConfig"]["LogGroup"], template)
        assert evaluate(logs["Resource"], template).endswith(f":log-group:{log_group}:*")


# -- encryption -------------------------------------------------------------------------------------------------
def test_key_rotates_and_its_policy_follows_the_article(resources):
    key = resources["Key"]
    assert key["Condition"] == "CreateKey"
    assert key["Properties"]["EnableKeyRotation"] is True
    by_sid = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    assert by_sid["EnableIamPolicies"]["Action"] == "kms:*"
    grant = by_sid["AllowAttachmentOfPersistentResources"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]} in as_list(grant["Principal"]["AWS"])
    assert by_sid["AllowUseBySageMaker"]["Principal"] == {"AWS": {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}}
    decrypting = as_list(by_sid["AllowFunctionsToDecrypt"]["Principal"]["AWS"])
    assert decrypting == [{"Fn::GetAtt": [f"{name}Role", "Arn"]} for name in FUNCTIONS]
    logs = by_sid["AllowCloudWatchLogs"]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.${AWS::URLSuffix}"}}
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    assert resources["KeyAlias"]["Properties"]["AliasName"] == {"Fn::Sub": "alias/${NamePrefix}-${EnvironmentName}"}


def test_key_policy_names_the_evaluation_verification_and_approval_roles(resources):
    by_sid = {s["Sid"]: s for s in resources["Key"]["Properties"]["KeyPolicy"]["Statement"]}

    def principals(sid: str) -> list[Any]:
        return as_list(by_sid[sid]["Principal"]["AWS"])

    def role(name: str) -> dict[str, Any]:
        return {"Fn::GetAtt": [name, "Arn"]}

    for name in ("EvaluateModelFunctionRole", "VerifyEndpointFunctionRole"):
        assert role(name) in principals("AllowFunctionsToDecrypt"), name
    # The evaluation writes its report under reports/ (SSE-KMS with the stack's key).
    writer = by_sid["AllowEvaluateModelToWriteReports"]
    assert (principals("AllowEvaluateModelToWriteReports"), writer["Action"]) == (
        [role("EvaluateModelFunctionRole")],
        "kms:GenerateDataKey",
    )
    # The verify step's rollback is an UpdateEndpoint to an encrypted endpoint config, as the deploy step's is.
    for sid in ("AllowAttachmentOfPersistentResources", "AllowHostingStepsToDescribe"):
        assert role("VerifyEndpointFunctionRole") in principals(sid), sid
        assert role("DeployEndpointFunctionRole") in principals(sid), sid
    # The approval step publishes to the encrypted topic with the state machine's role, through SNS only.
    publish = by_sid["AllowPipelineToPublishToTheTopic"]
    assert principals("AllowPipelineToPublishToTheTopic") == [
        role("PipelineStateMachineRole"),
        role("ScoringStateMachineRole"),
    ]
    assert sorted(as_list(publish["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert publish["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "sns.${AWS::Region}.${AWS::URLSuffix}"}}
    }
    # Every role the stack makes that uses the key is named in the key policy.
    named = {
        p["Fn::GetAtt"][0]
        for s in by_sid.values()
        for p in as_list(s["Principal"].get("AWS", []))
        if isinstance(p, dict) and "Fn::GetAtt" in p
    }
    roles = {k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert named == roles - {"PipelineTriggerRole", "ScoringTriggerRole"}  # EventBridge's roles never touch the key


def test_everything_at_rest_uses_the_one_key(resources, template):
    assert template["Globals"]["Function"]["KmsKeyArn"] == KEY_ARN
    assert template["Globals"]["Function"]["Environment"]["Variables"]["KMS_KEY_ARN"] == KEY_ARN
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == KEY_ARN
    assert resources["DeliveryDeadLetterQueue"]["Properties"]["KmsMasterKeyId"] == KEY_ARN
    (rule,) = resources["DataBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN},
        "BucketKeyEnabled": True,
    }
    assert template["Outputs"]["KmsKeyArn"]["Value"] == KEY_ARN


def test_bucket_is_private_versioned_and_notifies_eventbridge(resources):
    bucket = resources["DataBucket"]
    properties = bucket["Properties"]
    assert "BucketName" not in properties  # CloudFormation names it: bucket names are global
    assert bucket["DeletionPolicy"] == "Retain"
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert properties["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in r for r in rules)
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    expiry = {r.get("Prefix"): r.get("ExpirationInDays") for r in rules if "ExpirationInDays" in r}
    # Reports live as long as the models they judge: the quality gate reads the serving model's report.
    assert expiry == {
        "datasets/": {"Ref": "DatasetRetentionDays"},
        "models/": {"Ref": "ModelRetentionDays"},
        "reports/": {"Ref": "ModelRetentionDays"},
        # What the scoring API scored (raw feature values), only as long as drift checks need it.
        "scored/": {"Ref": "ScoredRecordsRetentionDays"},
    }


def test_bucket_policy_denies_plain_http_and_puts_with_other_encryption_or_keys(resources):
    policy = resources["DataBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "DataBucket"}
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    tls = by_sid["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(tls["Resource"]) == 2  # the bucket and its objects
    puts = by_sid["DenyPutsWithoutKms"]
    assert (puts["Effect"], puts["Principal"], puts["Action"]) == ("Deny", "*", "s3:PutObject")
    assert puts["Condition"]["StringNotEquals"] == {"s3:x-amz-server-side-encryption": "aws:kms"}
    # Paired with Null=false, not a deny on a missing header: UploadPart, which every multipart upload uses, is
    # authorized as s3:PutObject but never carries the header; the bucket's default SSE-KMS covers such puts.
    assert puts["Condition"]["Null"] == {"s3:x-amz-server-side-encryption": "false"}
    keys = by_sid["DenyPutsWithAnotherKey"]
    assert (keys["Effect"], keys["Action"]) == ("Deny", "s3:PutObject")
    assert keys["Condition"]["StringNotEquals"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": {
            "Fn::If": ["CreateKey", {"Fn::GetAtt": ["Key", "Arn"]}, {"Ref": "KmsKeyArn"}]
        }
    }


def test_log_groups_are_encrypted_and_expire(resources, template):
    log_groups = {k: r for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for logical_id, resource in log_groups.items():
        assert resource["Properties"]["KmsKeyId"] == KEY_ARN, logical_id
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id
    names = {evaluate(r["Properties"]["LogGroupName"], template) for r in log_groups.values()}
    for name in FUNCTIONS:
        assert evaluate(resources[name]["Properties"]["LoggingConfig"]["LogGroup"], template) in names, name
    assert template["Globals"]["Function"]["LoggingConfig"] == {"LogFormat": "JSON"}


# -- functions --------------------------------------------------------------------------------------------------
def test_functions_share_one_configuration_and_trace(resources, template):
    function_globals = template["Globals"]["Function"]
    assert function_globals["Tracing"] == "Active"
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Handler"] == "app.handler"
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    assert set(function_globals["Environment"]["Variables"]) == ENVIRONMENT
    functions = {k: r for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert {k: r["Properties"]["CodeUri"] for k, r in functions.items()} == FUNCTIONS
    for logical_id, resource in functions.items():
        properties = resource["Properties"]
        assert not {"Tracing", "Runtime", "Environment", "Layers"} & set(properties), logical_id
        assert properties["Role"] == {"Fn::GetAtt": [f"{logical_id}Role", "Arn"]}
        assert (ROOT / properties["CodeUri"] / "app.py").is_file(), logical_id
    for name in ("SplitRangeFunction", "TreatRangeFunction"):
        worker = resources[name]["Properties"]
        assert (worker["MemorySize"], worker["Timeout"]) == (3008, 900), name
        assert "EphemeralStorage" not in worker  # a range streams S3 to S3 and stages nothing in /tmp


def test_evaluation_and_verification_functions(resources, template):
    evaluate_model = resources["EvaluateModelFunction"]["Properties"]
    assert evaluate(evaluate_model["FunctionName"], template) == "kmeans-dev-evaluate-model"
    assert (evaluate_model["MemorySize"], evaluate_model["Timeout"]) == (3008, 900)
    assert evaluate_model["Description"] == (
        "Scores the held-out test set with the best model, writes the evaluation report and decides whether to promote"
    )
    verify = resources["VerifyEndpointFunction"]["Properties"]
    assert evaluate(verify["FunctionName"], template) == "kmeans-dev-verify-endpoint"
    assert (verify["MemorySize"], verify["Timeout"]) == (1024, 300)
    assert verify["Description"] == (
        "Scores test rows through the endpoint and compares with offline scoring; puts the previous config back on"
        " a mismatch"
    )
    for name in ("EvaluateModelFunction", "VerifyEndpointFunction"):
        skips = {s["id"] for s in resources[name]["Metadata"]["checkov"]["skip"]}
        assert skips == {s["id"] for s in resources["CheckEndpointFunction"]["Metadata"]["checkov"]["skip"]}, name
        assert f"{name.removesuffix('Function')}DataAccessPolicy" in resources, name
        assert f"{name.removesuffix('Function')}LogGroup" in resources, name
        assert len(evaluate_model["Description"]) <= 256 and len(verify["Description"]) <= 256


def test_evaluation_role_has_exactly_what_the_step_calls(resources):
    stmts = role_statements(resources, "EvaluateModelFunctionRole")
    sagemaker = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
    assert grants(stmts) == {
        "logs:CreateLogStream": {
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
            "${NamePrefix}-${EnvironmentName}-evaluate-model:*"
        },
        "logs:PutLogEvents": {
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
            "${NamePrefix}-${EnvironmentName}-evaluate-model:*"
        },
        "xray:PutTraceSegments": {"*"},
        "xray:PutTelemetryRecords": {"*"},
        "sagemaker:DescribeEndpoint": {f"{sagemaker}:endpoint/${{NamePrefix}}-${{EnvironmentName}}"},
        "sagemaker:DescribeEndpointConfig": {f"{sagemaker}:endpoint-config/${{NamePrefix}}-${{EnvironmentName}}-*"},
        "sagemaker:DescribeModel": {f"{sagemaker}:model/${{NamePrefix}}-${{EnvironmentName}}-*"},
        # The serving model may be made from a registered version: its artifact is the version's.
        "sagemaker:DescribeModelPackage": {f"{sagemaker}:model-package/${{NamePrefix}}-${{EnvironmentName}}/*"},
        "s3:GetObject": {"${DataBucket.Arn}/datasets/*", "${DataBucket.Arn}/models/*", "${DataBucket.Arn}/reports/*"},
        "s3:ListBucket": {"DataBucket.Arn"},
        "s3:PutObject": {"${DataBucket.Arn}/reports/*"},
        "kms:Decrypt": {"Key"},
        "kms:GenerateDataKey": {"Key"},
    }
    (listing,) = allows(stmts, "s3:ListBucket")
    # No s3:prefix condition: a GetObject carries none, so with one S3 would answer a missing (expired) serving
    # report with 403, and the gate could not tell "no report" (tests/infra/test_iam.py checks the calls).
    assert "Condition" not in listing


def test_verification_role_has_exactly_what_the_step_calls(resources):
    stmts = role_statements(resources, "VerifyEndpointFunctionRole")
    sagemaker = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
    endpoint = f"{sagemaker}:endpoint/${{NamePrefix}}-${{EnvironmentName}}"
    configs = f"{sagemaker}:endpoint-config/${{NamePrefix}}-${{EnvironmentName}}-*"
    log_group = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
        "${NamePrefix}-${EnvironmentName}-verify-endpoint:*"
    )
    assert grants(stmts) == {
        "logs:CreateLogStream": {log_group},
        "logs:PutLogEvents": {log_group},
        "xray:PutTraceSegments": {"*"},
        "xray:PutTelemetryRecords": {"*"},
        "sagemaker:InvokeEndpoint": {endpoint},
        "sagemaker:DescribeEndpoint": {endpoint},
        "sagemaker:DeleteEndpoint": {endpoint},
        # UpdateEndpoint is authorized against the endpoint and the endpoint config it moves to.
        "sagemaker:UpdateEndpoint": {endpoint, configs},
        "sagemaker:DescribeEndpointConfig": {configs},
        "s3:GetObject": {"${DataBucket.Arn}/datasets/*", "${DataBucket.Arn}/models/*"},
        "s3:ListBucket": {"DataBucket.Arn"},
        "kms:Decrypt": {"Key"},
        # An UpdateEndpoint to an encrypted endpoint config, as the deploy step's.
        "kms:CreateGrant": {"Key"},
        "kms:DescribeKey": {"Key"},
    }
    (listing,) = allows(stmts, "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "datasets/*"}}
    (grant,) = allows(stmts, "kms:CreateGrant")
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    # Whatever the deploy step may do to the endpoint config on UpdateEndpoint, the verify step mirrors.
    deploy = grants(role_statements(resources, "DeployEndpointFunctionRole"))
    assert deploy["sagemaker:UpdateEndpoint"] == {endpoint, configs}


def test_environment_holds_the_stack_configuration(template):
    variables = {
        k: evaluate(v, template) for k, v in template["Globals"]["Function"]["Environment"]["Variables"].items()
    }
    assert variables["NAME_PREFIX"] == variables["ENDPOINT_NAME"] == "kmeans-dev"
    assert variables["DATA_BUCKET"] == {"Ref": "DataBucket"}
    assert variables["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert (variables["DEFAULT_K"], variables["MAX_TRAINING_JOBS"], variables["MAX_PARALLEL_TRAINING_JOBS"]) == (
        "auto",
        "10",
        "2",
    )
    assert variables["FEATURE_COLUMNS"] == ""
    image = template["Globals"]["Function"]["Environment"]["Variables"]["KMEANS_IMAGE_URI"]["Fn::Sub"]
    assert image[0] == "${Account}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/kmeans:1"
    assert ":latest" not in TEMPLATE.read_text(encoding="utf-8")


def test_layer_ships_pinned_pydantic_and_powertools_only():
    layer = (ROOT / "layers" / "shared" / "requirements.txt").read_text(encoding="utf-8")
    pins = dict(
        re.match(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)$", line).groups()
        for line in layer.splitlines()
        if line.strip() and not line.startswith("#")
    )
    # No [tracer] extra: it would bring aws-xray-sdk and a second botocore into every function.
    assert set(pins) == {"pydantic", "aws-lambda-powertools"}
    assert pins["pydantic"].startswith("2.")
    assert pins["aws-lambda-powertools"].startswith("3.")


def test_layer_is_built_for_the_functions_runtime(resources):
    layer = resources["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.13"


# -- state machine ----------------------------------------------------------------------------------------------
def test_state_machine_logs_everything_encrypted_and_traces(resources):
    machine = resources["PipelineStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionUri"] == "statemachine/pipeline.asl.json"
    assert machine["Logging"]["Level"] == "ALL"
    assert machine["Logging"]["IncludeExecutionData"] is True
    (destination,) = machine["Logging"]["Destinations"]
    log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert resources[log_group]["Properties"]["KmsKeyId"] == KEY_ARN
    assert machine["Tracing"] == {"Enabled": True}
    assert machine["PropagateTags"] is True


def test_state_machine_runs_with_its_own_written_out_role(resources):
    machine = resources["PipelineStateMachine"]
    assert machine["Properties"]["Role"] == {"Fn::GetAtt": ["PipelineStateMachineRole", "Arn"]}
    assert "Policies" not in machine["Properties"]  # ignored next to Role: everything is on the role
    # The role's permissions that refer to the functions, topic and key are attached separately; the state
    # machine waits for them.
    assert machine["DependsOn"] == "PipelineStateMachineAccessPolicy"
    assert resources["PipelineStateMachineAccessPolicy"]["Properties"]["Roles"] == [{"Ref": "PipelineStateMachineRole"}]
    role = resources["PipelineStateMachineRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    assert "ManagedPolicyArns" not in role
    # Nothing in the role itself may refer to the key or to what refers to it: the key policy names the role.
    inline = json.dumps(role["Policies"])
    assert not re.search(r"Key|Function|NotificationTopic|DataBucket", inline)


def test_state_machine_may_invoke_the_pipeline_functions_and_nothing_else(resources):
    stmts = role_statements(resources, "PipelineStateMachineRole")
    invoke = allows(stmts, "lambda:InvokeFunction")
    assert len(invoke) == 1 and as_list(invoke[0]["Action"]) == ["lambda:InvokeFunction"]
    assert invoke[0]["Resource"] == [{"Fn::GetAtt": [name, "Arn"]} for name in STEP_FUNCTIONS]


def test_state_machine_role_has_exactly_what_the_pipeline_needs(resources):
    stmts = role_statements(resources, "PipelineStateMachineRole")
    log_delivery = {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    xray = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
    machine = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${NamePrefix}-${EnvironmentName}-pipeline"
    executions = machine.replace(":stateMachine:", ":execution:") + "/*"
    assert grants(stmts) == {
        **dict.fromkeys(log_delivery | xray, {"*"}),
        "lambda:InvokeFunction": {f"{name}.Arn" for name in STEP_FUNCTIONS},
        "sns:Publish": {"Ref:NotificationTopic"},
        "kms:Decrypt": {"Key"},
        "kms:GenerateDataKey": {"Key"},
        # The Distributed Maps: their children are this state machine's executions (AWS's documented policy).
        "states:StartExecution": {machine},
        "states:DescribeExecution": {executions},
        "states:StopExecution": {executions},
        # Their items and results, only under the run's working files.
        "s3:GetObject": {"${DataBucket.Arn}/datasets/*/work/*"},
        "s3:PutObject": {"${DataBucket.Arn}/datasets/*/work/map-runs/*"},
        "s3:AbortMultipartUpload": {"${DataBucket.Arn}/datasets/*/work/map-runs/*"},
        "s3:ListMultipartUploadParts": {"${DataBucket.Arn}/datasets/*/work/map-runs/*"},
    }


@pytest.mark.parametrize("machine", ["PipelineStateMachineRole", "ScoringStateMachineRole"])
def test_state_machine_may_publish_only_to_the_notification_topic(resources, machine):
    stmts = role_statements(resources, machine)
    (publish,) = allows(stmts, "sns:Publish")
    assert as_list(publish["Action"]) == ["sns:Publish"]
    assert publish["Resource"] == {"Ref": "NotificationTopic"}
    assert "Condition" not in publish
    # The topic is encrypted with the stack's key: the publisher needs the key, through SNS only (and the Maps'
    # files need it through S3 only).
    uses = allows(stmts, "kms:GenerateDataKey")
    assert all(sorted(as_list(u["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"] for u in uses)
    assert all(u["Resource"] == KEY_ARN for u in uses)
    assert sorted(u["Condition"]["StringEquals"]["kms:ViaService"]["Fn::Sub"] for u in uses) == [
        "s3.${AWS::Region}.${AWS::URLSuffix}",
        "sns.${AWS::Region}.${AWS::URLSuffix}",
    ]
    assert resources["NotificationTopic"]["Properties"]["KmsMasterKeyId"] == KEY_ARN
    # No other role of the stack may publish anywhere.
    publishers = {"PipelineStateMachineRole", "ScoringStateMachineRole"}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Role" and logical_id not in publishers:
            assert not allows(role_statements(resources, logical_id), "sns:Publish"), logical_id


def test_the_scoring_state_machine_invokes_only_batch_scorings_functions_and_starts_on_score_uploads(resources):
    (invoke,) = allows(role_statements(resources, "ScoringStateMachineRole"), "lambda:InvokeFunction")
    assert invoke["Resource"] == [{"Fn::GetAtt": [name, "Arn"]} for name in BATCH_FUNCTIONS]
    rule = resources["ScoreUploadRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "score/"}]
    assert rule["Targets"][0]["Arn"] == {"Ref": "ScoringStateMachine"}
    (start,) = allows(role_statements(resources, "ScoringTriggerRole"), "states:StartExecution")
    assert start["Resource"] == {"Ref": "ScoringStateMachine"}
    # Only the range worker may call the endpoint; the finish step may delete only under scores/.
    for name in FUNCTIONS:
        stmts = role_statements(resources, f"{name}Role")
        if name not in {"ScoreRangeFunction", "ScoreRecordsFunction", "VerifyEndpointFunction"}:
            assert not allows(stmts, "sagemaker:InvokeEndpoint"), name
    (delete,) = allows(role_statements(resources, "FinishScoresFunctionRole"), "s3:DeleteObject")
    assert delete["Resource"] == {"Fn::Sub": "${DataBucket.Arn}/scores/*"}


def test_asl_uses_exactly_the_definition_substitutions(resources):
    text = ASL.read_text(encoding="utf-8")
    json.loads(text)
    used = set(re.findall(r"\$\{([^}]+)\}", text))
    substitutions = resources["PipelineStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert used == set(substitutions)
    assert substitutions == {
        **{f"{name}Arn": {"Fn::GetAtt": [name, "Arn"]} for name in STEP_FUNCTIONS},
        "NotificationTopicArn": {"Ref": "NotificationTopic"},
        "DataBucket": {"Ref": "DataBucket"},
        "MaxDataWorkers": {"Ref": "MaxDataWorkers"},
        "Partition": {"Ref": "AWS::Partition"},
    }


def test_a_run_outlasts_the_longest_approval_wait(template):
    """The approval step's own timeout (ApprovalTimeoutHours) must end the run with its clear cause, not the
    execution's TimeoutSeconds cutting it short (States.Timeout) while it waits for a person."""
    longest_wait = template["Parameters"]["ApprovalTimeoutHours"]["MaxValue"] * 3600
    timeout = json.loads(ASL.read_text(encoding="utf-8"))["TimeoutSeconds"]
    assert timeout > longest_wait, (
        f"statemachine/pipeline.asl.json TimeoutSeconds={timeout} is shorter than the longest approval wait "
        f"({longest_wait} s, ApprovalTimeoutHours' MaxValue) plus the rest of a run"
    )


def test_uploads_and_the_schedule_start_the_pipeline_with_their_native_events(resources):
    upload = resources["UploadTriggerRule"]["Properties"]
    assert upload["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [{"Ref": "DataBucket"}]}, "object": {"key": [{"prefix": "incoming/"}]}},
    }
    schedule = resources["ScheduleTriggerRule"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["State"] == {"Fn::If": ["IsScheduleEnabled", "ENABLED", "DISABLED"]}
    for rule in (upload, schedule):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": "PipelineStateMachine"}
        assert not {"Input", "InputPath", "InputTransformer"} & set(target)
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}}
    (start,) = resources["PipelineTriggerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert (start["Action"], start["Resource"]) == ("states:StartExecution", {"Ref": "PipelineStateMachine"})


def test_run_results_reach_the_encrypted_topic(resources):
    rule = resources["RunResultRule"]["Properties"]
    assert rule["EventPattern"]["detail"] == {
        "status": ["FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"],
        "stateMachineArn": [{"Ref": "PipelineStateMachine"}],
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "NotificationTopic"}
    template_text = target["InputTransformer"]["InputTemplate"]
    assert {"<execution>", "<status>", "<stateMachine>"} <= set(re.findall(r"<\w+>", template_text))
    publish = resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert publish["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["RunResultRule", "Arn"]}}}
    assert resources["NotificationSubscription"]["Condition"] == "HasNotificationEmail"


# -- parameters and outputs -------------------------------------------------------------------------------------
def test_evaluation_gate_approval_and_check_parameters(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for name, (variable, kind, default, allowed) in EVALUATION_PARAMETERS.items():
        spec = template["Parameters"][name]
        assert (spec["Type"], spec["Default"]) == (kind, default), name
        if kind == "Number":
            assert (spec["MinValue"], spec["MaxValue"]) == allowed, name
        else:
            assert spec["AllowedValues"] == allowed, name
        assert len(spec["Description"]) >= 60, f"{name} needs a Description a reviewer understands"
        assert variables[variable] == {"Ref": name}, variable
    assert "first deploy" in template["Parameters"]["GateTolerancePercent"]["Description"]
    assert "override" in template["Parameters"]["ApprovalRequired"]["Description"]


def test_every_parameter_is_in_exactly_one_parameter_group(template):
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])
    (evaluation,) = [g for g in groups if g["Parameters"] == list(EVALUATION_PARAMETERS)]
    assert evaluation["Label"]["default"]


def test_local_env_file_carries_the_parameters_defaults(template):
    """`sam local invoke --env-vars events/local-env.json` runs the handlers as a stack with default parameters."""
    local = json.loads((ROOT / "events" / "local-env.json").read_text(encoding="utf-8"))["Parameters"]
    assert set(local) == ENVIRONMENT
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for variable, value in variables.items():
        if isinstance(value, dict) and list(value) == ["Ref"] and value["Ref"] in template["Parameters"]:
            assert local[variable] == defaults(template)[value["Ref"]], variable


def test_parameter_defaults_satisfy_their_own_constraints(template):
    for name, spec in template["Parameters"].items():
        default = spec["Default"]
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], str(default)), name
        if "AllowedValues" in spec:
            assert default in spec["AllowedValues"], name
        if "MinValue" in spec:
            assert spec["MinValue"] <= default <= spec["MaxValue"], name
    assert (defaults(template)["KmsKeyArn"], defaults(template)["NotificationEmail"]) == ("", "")
    assert defaults(template)["ScheduleEnabled"] == "false"


def test_names_fit_sagemaker_limits(template):
    prefix, environment = (template["Parameters"][p]["AllowedPattern"] for p in ("NamePrefix", "EnvironmentName"))
    assert re.fullmatch(prefix, "a" * 10) and not re.fullmatch(prefix, "a" * 11)
    assert re.fullmatch(environment, "a" * 8) and not re.fullmatch(environment, "a" * 9)
    assert not re.fullmatch(prefix, "Kmeans") and not re.fullmatch(environment, "d-v")  # lowercase, no dash
    longest_prefix = 10 + 1 + 8
    assert longest_prefix <= 19 and longest_prefix + 1 + 10 <= 32  # "<prefix>-<run id>" tuning job names


def test_instance_type_parameters_refuse_local_nvme_types(template):
    for name in ("TrainingInstanceType", "HostingInstanceType"):
        spec = template["Parameters"][name]
        assert "NVMe" in spec["Description"]
        for value in spec["AllowedValues"]:
            family = value.split(".")[1]
            assert family in EBS_ONLY_FAMILIES, f"{name} allows {value}"
            assert not re.search(r"\d[a-z]*d", family), f"{name} allows {value}"
        assert spec["Default"] in spec["AllowedValues"]


def test_outputs(template):
    assert set(template["Outputs"]) == {
        "DataBucketName",
        "StateMachineArn",
        "EndpointName",
        "NotificationTopicArn",
        "KmsKeyArn",
        "SageMakerRoleArn",
        "ScoreApiUrl",
        "ModelPackageGroupName",
        "DriftAlarmName",
        "ScoringStateMachineArn",
    }
    assert template["Outputs"]["ScoreApiUrl"]["Value"] == {"Fn::GetAtt": ["ScoreRecordsFunctionUrl", "FunctionUrl"]}
    assert evaluate(template["Outputs"]["EndpointName"]["Value"], template) == "kmeans-dev"


def test_samconfig_deploys_and_validates_with_safe_defaults():
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "kmeans-pipeline"
    deploy = default["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True
    assert default["build"]["parameters"] == {"cached": True, "parallel": True}
    assert default["validate"]["parameters"]["lint"] is True


def test_loader_turns_short_forms_into_long_forms_and_keeps_dates_as_text():
    from offline.cfn import TemplateError, loads_template

    loaded = loads_template(
        "Version: 2012-10-17\n"
        "A: !Ref X\n"
        "B: !GetAtt Role.Arn\n"
        "C: !Sub ['${A}-x', {A: !Ref AWS::Region}]\n"
        "D: !If [Cond, !Condition Other, !Ref AWS::NoValue]\n"
        "E: !FindInMap [Map, !Ref AWS::Region, Account]\n"
    )
    assert loaded == {
        "Version": "2012-10-17",
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Role", "Arn"]},
        "C": {"Fn::Sub": ["${A}-x", {"A": {"Ref": "AWS::Region"}}]},
        "D": {"Fn::If": ["Cond", {"Condition": "Other"}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::FindInMap": ["Map", {"Ref": "AWS::Region"}, "Account"]},
    }
    with pytest.raises(TemplateError, match="duplicate key 'A'"):
        loads_template("A: 1\nA: 2\n")


def test_the_scoring_api_is_an_iam_authorised_function_url_that_only_reads_and_scores(resources, template):
    api = resources["ScoreRecordsFunction"]["Properties"]
    assert api["FunctionUrlConfig"] == {"AuthType": "AWS_IAM"}  # never NONE: callers sign their requests
    assert evaluate(api["FunctionName"], template) == "kmeans-dev-score-records"
    role = resources["ScoreRecordsFunctionRole"]["Properties"]
    actions = sorted(
        a
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        for a in as_list(statement["Action"])
    )
    assert actions == [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
        "sagemaker:DescribeModelPackage",
        "sagemaker:InvokeEndpoint",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    ]
    data = resources["ScoreRecordsDataAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Sid"]: (s["Action"], s["Resource"]) for s in data} == {
        "ReadReports": ("s3:GetObject", {"Fn::Sub": "${DataBucket.Arn}/reports/*"}),
        "TellMissingReports": ("s3:ListBucket", {"Fn::GetAtt": ["DataBucket", "Arn"]}),
        # What it scored, for drift checks: written under scored/ only, with the stack's key.
        "KeepScoredRecords": ("s3:PutObject", {"Fn::Sub": "${DataBucket.Arn}/scored/*"}),
        "EncryptScoredRecords": ("kms:GenerateDataKey", KEY_ARN),
    }
    assert all("Condition" not in s for s in data)  # an expired report must be a 404 (tests/infra/test_iam.py)


# -- drift and the model registry ---------------------------------------------------------------------------------
def test_the_drift_check_runs_on_the_stacks_schedule_and_alarms_to_the_topic(resources, template):
    rule = resources["DriftCheckRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Fn::Sub": "rate(${DriftCheckMinutes} minutes)"}
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["CheckDriftFunction", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    permission = resources["DriftCheckPermission"]["Properties"]
    assert (permission["Principal"], permission["SourceArn"]) == (
        "events.amazonaws.com",
        {"Fn::GetAtt": ["DriftCheckRule", "Arn"]},
    )
    invoke = resources["DriftCheckInvokeConfig"]["Properties"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    alarm = resources["DriftAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "DriftDetected",
        "Maximum",
        "GreaterThanThreshold",
        0.5,
    )
    assert evaluate(alarm["Namespace"], template) == "kmeans-dev/kmeans-pipeline"  # the check's own namespace
    assert alarm["TreatMissingData"] == "notBreaching"  # too few records to judge is not drift
    assert alarm["EvaluationPeriods"] == 1  # within one check
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "NotificationTopic"}]
    # The alarm's period is the check's schedule, in seconds, for every schedule the stack allows.
    periods = template["Mappings"]["DriftCheckPeriods"]
    allowed = template["Parameters"]["DriftCheckMinutes"]["AllowedValues"]
    assert {int(m): p["Seconds"] for m, p in periods.items()} == {m: m * 60 for m in allowed}
    assert alarm["Period"] == {"Fn::FindInMap": ["DriftCheckPeriods", {"Ref": "DriftCheckMinutes"}, "Seconds"]}
    # The alarm may publish to the encrypted topic.
    policy = {s["Sid"]: s for s in resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    alarms = policy["AllowDeliveryFailureAlarm"]
    assert {"Fn::GetAtt": ["DriftAlarm", "Arn"]} in as_list(alarms["Condition"]["ArnEquals"]["aws:SourceArn"])
    key = {s["Sid"]: s for s in resources["Key"]["Properties"]["KeyPolicy"]["Statement"]}
    assert key["AllowCloudWatchAlarmsToUseTheTopic"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(key["AllowCloudWatchAlarmsToUseTheTopic"]["Action"])


def test_the_drift_alarm_starts_a_retraining_run_only_when_the_stack_says_so(resources, template):
    rule = resources["RetrainOnDriftRule"]["Properties"]
    assert rule["State"] == {"Fn::If": ["IsRetrainOnDrift", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["IsRetrainOnDrift"] == {"Fn::Equals": [{"Ref": "RetrainOnDrift"}, "true"]}
    assert template["Parameters"]["RetrainOnDrift"]["Default"] == "false"
    assert rule["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [{"Fn::GetAtt": ["DriftAlarm", "Arn"]}],
        "detail": {"state": {"value": ["ALARM"]}},
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Ref": "PipelineStateMachine"}
    assert "InputTransformer" not in target  # the native event: Resolve reads it (trigger "drift")
    queue = resources["DeliveryDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    sources = queue["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {"Fn::GetAtt": ["RetrainOnDriftRule", "Arn"]} in sources
    assert {"Fn::GetAtt": ["DriftCheckRule", "Arn"]} in sources


def test_drift_parameters_have_justified_defaults(template):
    parameters = template["Parameters"]
    expected = {
        "DriftCheckMinutes": ("DRIFT_CHECK", 60),
        "DriftWindowMinutes": ("DRIFT_WINDOW_MINUTES", 60),
        "DriftMinRecords": ("DRIFT_MIN_RECORDS", 1000),
        "DriftPsiThreshold": ("DRIFT_PSI_THRESHOLD", 0.25),
        "DriftFlaggedPValue": ("DRIFT_FLAGGED_P_VALUE", 0.0001),
        "ScoredRecordsRetentionDays": (None, 30),
    }
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for name, (variable, default) in expected.items():
        assert parameters[name]["Default"] == default, name
        if variable in variables:
            assert variables[variable] == {"Ref": name}
    from kmeans_pipeline.model.drift import FLAGGED_P_VALUE, MIN_RECORDS, PSI_THRESHOLD
    from kmeans_pipeline.schemas.settings import DriftSettings

    defaults = DriftSettings(powertools_metrics_namespace="x")
    assert (PSI_THRESHOLD, FLAGGED_P_VALUE, MIN_RECORDS) == (0.25, 0.0001, 1000)
    assert (defaults.drift_psi_threshold, defaults.drift_flagged_p_value, defaults.drift_min_records) == (
        0.25,
        0.0001,
        1000,
    )


def test_the_drift_check_reads_only_reports_and_scored_records_and_publishes_only_its_namespace(resources, template):
    role = resources["CheckDriftFunctionRole"]["Properties"]
    statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
    publish = statements["PublishDriftMetrics"]
    assert publish["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": {"Fn::Sub": "${NamePrefix}-${EnvironmentName}/kmeans-pipeline"}}
    }
    actions = sorted({a for s in statements.values() for a in as_list(s["Action"])})
    assert not [a for a in actions if a.startswith("sagemaker:") and not a.startswith("sagemaker:Describe")]
    data = resources["CheckDriftDataAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    reads = {s["Sid"]: s for s in data}["ReadReportsAndScoredRecords"]
    assert reads["Action"] == "s3:GetObject"
    assert reads["Resource"] == [{"Fn::Sub": "${DataBucket.Arn}/reports/*"}, {"Fn::Sub": "${DataBucket.Arn}/scored/*"}]
    assert not [s for s in data if "s3:PutObject" in as_list(s["Action"])]


def test_the_model_registry_is_a_retained_tagged_group(resources, template):
    group = resources["ModelRegistry"]
    assert group["Type"] == "AWS::SageMaker::ModelPackageGroup"
    assert group["DeletionPolicy"] == group["UpdateReplacePolicy"] == "Retain"
    properties = group["Properties"]
    assert evaluate(properties["ModelPackageGroupName"], template) == "kmeans-dev"
    assert "\n" not in evaluate(properties["ModelPackageGroupDescription"], template)  # no control characters
    assert {t["Key"] for t in properties["Tags"]} == {"Project", "Environment", "Owner"}


def test_the_registry_step_may_touch_only_this_stacks_versions(resources, template):
    statements = role_statements(resources, "RecordVersionFunctionRole")
    group = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model-package-group/${NamePrefix}-${EnvironmentName}"
    versions = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:model-package/${NamePrefix}-${EnvironmentName}/*"
    for action in ("sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage", "sagemaker:DescribeModelPackage"):
        (statement,) = allows(statements, action)
        assert [r["Fn::Sub"] for r in as_list(statement["Resource"])] == [group, versions]
    assert not [s for s in statements for a in as_list(s["Action"]) if a.startswith("sagemaker:") and "Endpoint" in a]
    # The model card is encrypted with the stack's key, only through SageMaker.
    (kms,) = allows(statements, "kms:GenerateDataKey")
    assert kms["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "sagemaker.${AWS::Region}.${AWS::URLSuffix}"}}
    }
    # Create model makes the model from the registered version, which it may read.
    create = role_statements(resources, "CreateModelFunctionRole")
    (from_version,) = [s for s in allows(create, "sagemaker:CreateModel") if "model-package" in str(s["Resource"])]
    assert from_version["Resource"]["Fn::Sub"] == versions


SCHEDULES_EVENTBRIDGE_ACCEPTS = [
    "rate(1 minute)",
    "rate(1 hour)",
    "rate(1 day)",
    "rate(2 minutes)",
    "rate(7 days)",
    "rate(10 hours)",
    "rate(100 days)",
    "cron(0 12 * * ? *)",
    "cron(15 10 ? * 6L 2022-2023)",
    "cron(0/15 * * * ? *)",
    "cron(0 8 1W * ? *)",
    "cron(0 9 ? * MON#1 *)",
]
# EventBridge refuses these at deploy: a singular unit needs 1 and a plural one more than 1; cron has six fields.
SCHEDULES_EVENTBRIDGE_REFUSES = [
    "rate(7 day)",
    "rate(1 days)",
    "rate(1 minutes)",
    "rate(5 hour)",
    "rate(0 minutes)",
    "rate(01 minute)",
    "rate(1  day)",
    "rate(-1 days)",
    "rate(1.5 hours)",
    "rate(1 week)",
    "rate(7 Days)",
    "cron(0 12 * * ?)",
    "cron(0 12 * * ? * *)",
    "cron()",
    " rate(1 day)",
    "rate(1 day) ",
    "at(2025-01-01T00:00:00)",
]


@pytest.mark.parametrize("expression", SCHEDULES_EVENTBRIDGE_ACCEPTS)
def test_the_schedule_pattern_accepts_what_eventbridge_accepts(template, expression):
    assert re.fullmatch(template["Parameters"]["ScheduleExpression"]["AllowedPattern"], expression)


@pytest.mark.parametrize("expression", SCHEDULES_EVENTBRIDGE_REFUSES)
def test_the_schedule_pattern_refuses_what_eventbridge_refuses(template, expression):
    assert not re.fullmatch(template["Parameters"]["ScheduleExpression"]["AllowedPattern"], expression)


def test_the_deploy_lease_table_is_encrypted_with_the_stacks_key_recoverable_and_self_cleaning(resources):
    table = resources["DeployLeaseTable"]
    props = table["Properties"]
    assert props["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::If": ["CreateKey", {"Fn::GetAtt": ["Key", "Arn"]}, {"Ref": "KmsKeyArn"}]},
    }
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}  # clean-up only
    assert props["KeySchema"] == [{"AttributeName": "LockName", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {t["Key"] for t in props["Tags"]} == {"Project", "Environment", "Owner"}
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Delete"  # leases are ephemeral


def test_the_lease_roles_get_only_their_item_calls_on_the_lease_table_and_the_key_only_through_dynamodb(resources):
    item = "DeployLeaseTable.Arn"
    lease = grants(role_statements(resources, "DeployLeaseFunctionRole"))
    assert {a: r for a, r in lease.items() if a.startswith("dynamodb:")} == {
        "dynamodb:PutItem": {item},  # take (a conditional write)
        "dynamodb:DeleteItem": {item},  # release (only the holder's)
        "dynamodb:GetItem": {item},  # a busy answer returns the holder's item
    }
    for role in ("DeployEndpointFunctionRole", "CheckEndpointFunctionRole"):
        renewing = grants(role_statements(resources, role))
        assert {a: r for a, r in renewing.items() if a.startswith("dynamodb:")} == {"dynamodb:UpdateItem": {item}}
    others = [
        name
        for name in FUNCTIONS
        if name not in ("DeployLeaseFunction", "DeployEndpointFunction", "CheckEndpointFunction")
    ]
    for name in others:
        assert not any(a.startswith("dynamodb:") for a in grants(role_statements(resources, f"{name}Role"))), name
    for policy in ("DeployLeaseTakePolicy", "DeployLeaseRenewPolicy"):
        for statement in resources[policy]["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("kms:") for a in as_list(statement["Action"])):
                assert statement["Condition"] == {
                    "StringEquals": {"kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.${AWS::URLSuffix}"}}
                }
            else:
                assert statement["Condition"] == {
                    "ForAllValues:StringEquals": {
                        "dynamodb:LeadingKeys": [{"Fn::Sub": "deploy#${NamePrefix}-${EnvironmentName}"}]
                    }
                }


def test_no_role_has_two_inline_policies_of_one_name(resources):
    # An AWS::IAM::Policy is written with PutRolePolicy, which replaces an inline policy of the same name on that
    # role: two policies of one name on one role leave the role with only one of them, whichever was written last.
    names: dict[tuple[str, str], int] = {}
    for logical, spec in resources.items():
        if spec["Type"] == "AWS::IAM::Role":
            for policy in spec["Properties"].get("Policies", []):
                names[(logical, policy["PolicyName"])] = names.get((logical, policy["PolicyName"]), 0) + 1
        if spec["Type"] == "AWS::IAM::Policy":
            for role in spec["Properties"]["Roles"]:
                key = (role["Ref"], spec["Properties"]["PolicyName"])
                names[key] = names.get(key, 0) + 1
    assert [key for key, count in names.items() if count > 1] == []
