"""Deploy `template.yaml` into an in-process moto: the stack's key, bucket, roles, topic, functions and state
machine, with the template's own parameters, conditions and intrinsic functions resolved.

Only what the offline run needs is created; every other resource still gets a physical id so that references
to it resolve. SageMaker resources are made at run time by the steps, never by the stack.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from offline.cfn import load_template

ACCOUNT_ID = "123456789012"
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class Deployed:
    """What the offline stack created, by logical id, plus the values the runner needs."""

    stack_name: str
    region: str
    parameters: dict[str, str]
    physical: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict] = field(default_factory=dict)  # function name -> {logical_id, module, env}
    state_machine_arn: str = ""  # the pipeline's
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN (the pipeline, batch scoring)
    outputs: dict[str, Any] = field(default_factory=dict)
    bucket_policies: dict[str, dict] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)  # logical id -> EventBridge rule name


class StackBuilder:
    def __init__(self, root: Path, stack_name: str, region: str, overrides: dict[str, str] | None = None) -> None:
        self.root = root
        self.template = load_template(root / "template.yaml")
        self.stack_name = stack_name
        self.region = region
        params = {}
        for name, spec in self.template.get("Parameters", {}).items():
            params[name] = str(spec.get("Default", ""))
        params.update(overrides or {})
        self.deployed = Deployed(stack_name=stack_name, region=region, parameters=params)
        self.conditions: dict[str, bool] = {}
        self.resources: dict[str, dict] = self.template.get("Resources", {})
        self.globals = self.template.get("Globals", {})
        self._clients: dict[str, Any] = {}

    # -- intrinsic functions -------------------------------------------------------------------------------
    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/offline",
            "AWS::NoValue": None,
        }.get(name)

    def ref(self, name: str) -> Any:
        if name in self.deployed.parameters:
            return self.deployed.parameters[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.deployed.physical:
            return self.deployed.physical[name]
        raise KeyError(f"Ref to unknown or not-yet-created {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn" and logical_id in self.deployed.arns:
            return self.deployed.arns[logical_id]
        if attribute == "Name":
            return self.deployed.physical[logical_id]
        if logical_id in self.deployed.arns:
            return self.deployed.arns[logical_id]
        raise KeyError(f"Fn::GetAtt {logical_id}.{attribute} is not available offline")

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self.conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Contains":  # a rule function: a list of strings holds a string
                items, item = self.resolve(arg)
                return str(item) in [str(i) for i in items]
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::FindInMap":
                mapping, top, second = self.resolve(arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return text.split(sep)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if key == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b"]
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.get_att(logical, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    # -- deployment -----------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]

    def active(self) -> dict[str, dict]:
        return {
            logical: spec
            for logical, spec in self.resources.items()
            if "Condition" not in spec or self.condition(spec["Condition"])
        }

    def check_rules(self) -> None:
        """The template's Rules, as CloudFormation checks them before it creates anything: a failed assertion
        stops the deployment with its AssertDescription."""
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions", []):
                if not self.resolve(assertion["Assert"]):
                    raise RuleFailed(f"Rule {name} failed: {assertion.get('AssertDescription', 'assertion failed')}")

    def deploy(self) -> Deployed:
        self.check_rules()
        resources = self.active()
        # Names first, so that policies may refer to roles and functions before they exist (as in CloudFormation).
        # Log groups last: their names usually refer to the functions'.
        for logical, spec in sorted(resources.items(), key=lambda item: item[1]["Type"] == "AWS::Logs::LogGroup"):
            self._assign_name(logical, spec)
        order = {"AWS::KMS::Key": 0, "AWS::S3::Bucket": 1, "AWS::IAM::Role": 2, "AWS::Logs::LogGroup": 2}
        for logical, spec in sorted(resources.items(), key=lambda item: order.get(item[1]["Type"], 5)):
            creator = getattr(self, "_create_" + spec["Type"].replace("::", "_").replace("AWS_", "", 1), None)
            if creator is not None:
                creator(logical, self.resolve(spec.get("Properties", {})))
        self.deployed.outputs = {
            name: self.resolve(spec["Value"])
            for name, spec in self.template.get("Outputs", {}).items()
            if "Condition" not in spec or self.condition(spec["Condition"])
        }
        return self.deployed

    def _assign_name(self, logical: str, spec: dict) -> None:
        kind = spec["Type"]
        lower = f"{self.stack_name}-{logical}".lower()
        props = spec.get("Properties", {})
        arn_by_kind = {
            "AWS::IAM::Role": lambda n: f"arn:aws:iam::{ACCOUNT_ID}:role/{n}",
            "AWS::S3::Bucket": lambda n: f"arn:aws:s3:::{n}",
            "AWS::SNS::Topic": lambda n: f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{n}",
            "AWS::Serverless::Function": lambda n: f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{n}",
            "AWS::Lambda::Function": lambda n: f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{n}",
            "AWS::Serverless::StateMachine": lambda n: f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{n}",
            "AWS::Logs::LogGroup": lambda n: f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{n}:*",
            "AWS::Serverless::LayerVersion": lambda n: f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:layer:{n}:1",
            "AWS::Events::Rule": lambda n: f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{n}",
            "AWS::SQS::Queue": lambda n: f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{n}",
            "AWS::DynamoDB::Table": lambda n: f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{n}",
        }
        if kind == "AWS::KMS::Key":
            return  # its id comes from KMS when it is created
        name = lower
        if kind in {"AWS::Serverless::Function", "AWS::Lambda::Function"} and "FunctionName" in props:
            name = self.resolve(props["FunctionName"])
        if kind == "AWS::Logs::LogGroup" and "LogGroupName" in props:
            try:
                name = self.resolve(props["LogGroupName"])
            except KeyError:
                name = f"/offline/{lower}"
        elif kind == "AWS::SNS::Topic":
            name = f"{self.stack_name}-{logical}"
        elif kind == "AWS::CloudWatch::Alarm":
            name = self.resolve(props["AlarmName"]) if "AlarmName" in props else f"{self.stack_name}-{logical}"
            arn_by_kind[kind] = lambda n: f"arn:aws:cloudwatch:{self.region}:{ACCOUNT_ID}:alarm:{n}"
        elif kind == "AWS::SageMaker::ModelPackageGroup":
            # Ref returns the group's ARN, as in CloudFormation.
            name = self.resolve(props["ModelPackageGroupName"])
            arn_by_kind[kind] = lambda n: (
                f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:model-package-group/{n.lower()}"
            )
        elif kind == "AWS::DynamoDB::Table" and "TableName" in props:
            name = self.resolve(props["TableName"])
        self.deployed.physical[logical] = name
        if kind in arn_by_kind:
            self.deployed.arns[logical] = arn_by_kind[kind](name)
            if kind in {
                "AWS::SNS::Topic",
                "AWS::Serverless::LayerVersion",
                "AWS::Serverless::StateMachine",
                "AWS::SageMaker::ModelPackageGroup",
            }:
                self.deployed.physical[logical] = self.deployed.arns[logical]

    def _create_KMS_Key(self, logical: str, props: dict) -> None:
        args = {
            "Description": props.get("Description", logical),
            "Tags": [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])],
        }
        if props.get("KeyPolicy"):
            args["Policy"] = json.dumps(props["KeyPolicy"])
        meta = self.client("kms").create_key(**args)["KeyMetadata"]
        self.deployed.physical[logical] = meta["KeyId"]
        self.deployed.arns[logical] = meta["Arn"]
        if props.get("EnableKeyRotation"):
            self.client("kms").enable_key_rotation(KeyId=meta["KeyId"])

    def _create_KMS_Alias(self, logical: str, props: dict) -> None:
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])

    def _create_S3_Bucket(self, logical: str, props: dict) -> None:
        s3 = self.client("s3")
        name = self.deployed.physical[logical]
        args = {"Bucket": name}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        s3.create_bucket(**args)
        if "BucketEncryption" in props:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                    for k, v in rule.items()
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if props.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if props.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]})
        if props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

    def _create_S3_BucketPolicy(self, logical: str, props: dict) -> None:
        # moto 5.2.1 applies a bucket policy's Deny statements without reading their Conditions, so the
        # stack's "deny non-TLS / deny non-KMS puts" would refuse every request. The policy is kept here for
        # inspection and checked by tests/infra/test_template.py instead; every put this project makes sends SSE-KMS.
        self.deployed.bucket_policies[props["Bucket"]] = props["PolicyDocument"]

    def _create_IAM_Role(self, logical: str, props: dict) -> None:
        iam = self.client("iam")
        name = self.deployed.physical[logical]
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(props.get("AssumeRolePolicyDocument", {})),
            Tags=props.get("Tags", []),
        )
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
            )

    def _create_SNS_Topic(self, logical: str, props: dict) -> None:
        attributes = {"KmsMasterKeyId": props["KmsMasterKeyId"]} if props.get("KmsMasterKeyId") else {}
        self.client("sns").create_topic(
            Name=self.deployed.arns[logical].rsplit(":", 1)[1], Attributes=attributes, Tags=props.get("Tags", [])
        )

    def _create_Events_Rule(self, logical: str, props: dict) -> None:
        events = self.client("events")
        name = self.deployed.physical[logical]
        args = {"Name": name, "State": props.get("State", "ENABLED"), "Description": props.get("Description", "")}
        if "EventPattern" in props:
            args["EventPattern"] = json.dumps(props["EventPattern"])
        if "ScheduleExpression" in props:
            args["ScheduleExpression"] = props["ScheduleExpression"]
        events.put_rule(**args)
        targets = [
            {"Id": t["Id"], "Arn": t["Arn"], **({"RoleArn": t["RoleArn"]} if "RoleArn" in t else {})}
            for t in props.get("Targets", [])
        ]
        if targets:
            events.put_targets(Rule=name, Targets=targets)
        self.deployed.rules[logical] = name

    def _create_CloudWatch_Alarm(self, logical: str, props: dict) -> None:
        # moto keeps the alarm but never evaluates it: the runner does (OfflineAWS.evaluate_alarms).
        keys = [
            "AlarmDescription",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "AlarmActions",
            "OKActions",
            "Tags",
        ]
        args = {key: props[key] for key in keys if key in props}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in args:
                args[key] = int(args[key])
        args["Threshold"] = float(args["Threshold"])
        self.client("cloudwatch").put_metric_alarm(AlarmName=self.deployed.physical[logical], **args)

    def _create_SageMaker_ModelPackageGroup(self, logical: str, props: dict) -> None:
        # The SageMaker stand-in answers (it is installed before the stack is deployed).
        self.client("sagemaker").create_model_package_group(
            ModelPackageGroupName=props["ModelPackageGroupName"],
            ModelPackageGroupDescription=props.get("ModelPackageGroupDescription", ""),
            Tags=props.get("Tags", []),
        )

    def _create_DynamoDB_Table(self, logical: str, props: dict) -> None:
        ddb = self.client("dynamodb")
        name = self.deployed.physical[logical]
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        sse = props.get("SSESpecification")
        if sse:  # CloudFormation's SSEEnabled/KMSMasterKeyId are the API's Enabled/KMSMasterKeyId
            args["SSESpecification"] = {
                "Enabled": bool(sse.get("SSEEnabled")),
                **({"SSEType": sse["SSEType"]} if "SSEType" in sse else {}),
                **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {}),
            }
        if props.get("Tags"):
            args["Tags"] = props["Tags"]
        ddb.create_table(**args)
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
            )

    def _create_Logs_LogGroup(self, logical: str, props: dict) -> None:
        args = {"logGroupName": self.deployed.physical[logical]}
        if props.get("KmsKeyId"):
            args["kmsKeyId"] = props["KmsKeyId"]
        self.client("logs").create_log_group(**args)

    def _execution_role(self, name: str, service: str) -> str:
        iam = self.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

    def _create_Serverless_Function(self, logical: str, props: dict) -> None:
        defaults = self.resolve(self.globals.get("Function", {}))
        merged = {**defaults, **props}
        env = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        name = self.deployed.physical[logical]
        role = merged.get("Role") or self._execution_role(f"{name}-role", "lambda.amazonaws.com")
        code_uri = merged["CodeUri"].rstrip("/")
        module_file, attribute = merged["Handler"].rsplit(".", 1)
        module = ".".join(Path(code_uri).parts + (module_file,))
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime=merged.get("Runtime", "python3.13"),
            Role=role,
            Handler=merged["Handler"],
            Code={"ZipFile": _placeholder_zip()},
            Timeout=int(merged.get("Timeout", 30)),
            MemorySize=int(merged.get("MemorySize", 128)),
            Environment={"Variables": {k: str(v) for k, v in env.items()}},
        )
        if merged.get("FunctionUrlConfig"):  # SAM's <Function>Url resource, as a real deploy makes it
            url = self.client("lambda").create_function_url_config(
                FunctionName=name, AuthType=merged["FunctionUrlConfig"]["AuthType"]
            )["FunctionUrl"]
            self.deployed.arns[f"{logical}Url"] = url
        self.deployed.functions[name] = {
            "logical_id": logical,
            "module": module,
            "attribute": attribute,
            "env": env,
            "timeout": int(merged.get("Timeout", 30)),
            "memory": int(merged.get("MemorySize", 128)),
        }

    def _create_Serverless_StateMachine(self, logical: str, props: dict) -> None:
        definition = (self.root / props["DefinitionUri"]).read_text()
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = re.findall(r"\$\{[A-Za-z0-9_]+\}", definition)
        if leftover:
            raise ValueError(f"{props['DefinitionUri']} uses {sorted(set(leftover))} with no DefinitionSubstitution")
        name = self.deployed.arns[logical].rsplit(":", 1)[1]
        role = props.get("Role") or self._execution_role(f"{name}-role", "states.amazonaws.com")
        arn = self.client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=role, type=props.get("Type", "STANDARD")
        )["stateMachineArn"]
        self.deployed.arns[logical] = arn
        self.deployed.physical[logical] = arn
        self.deployed.state_machines[logical] = arn
        if logical == "PipelineStateMachine":
            self.deployed.state_machine_arn = arn


class RuleFailed(ValueError):
    """A template rule's assertion does not hold for this deployment (CloudFormation refuses it the same way)."""


class _NoValue:
    pass


_NO_VALUE = _NoValue()


def _placeholder_zip() -> bytes:
    # moto stores the package; the handler itself is run in-process from the source tree.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    raise RuntimeError('runs in-process')\n")
    return buffer.getvalue()
