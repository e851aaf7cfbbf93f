"""The template's K-Means image table against the SageMaker Python SDK (a development dependency, v2)."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from offline.cfn import load_template, loads_template
from offline.stack import RuleFailed, StackBuilder
from testkit.aws import require
from tools import generate_image_mappings as generator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def image_uris() -> Any:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    require("sagemaker")
    from sagemaker import image_uris

    return image_uris


@cache
def url_suffix(region: str) -> str:
    """What CloudFormation's AWS::URLSuffix is in `region`: its partition's DNS suffix, from botocore's data."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("endpoints")["partitions"]
    for partition in partitions:
        if region in partition["regions"]:
            return partition["dnsSuffix"]
    for partition in partitions:
        if re.match(partition["regionRegex"], region):
            return partition["dnsSuffix"]
    raise LookupError(f"no partition for {region}")


def template_image_uri(template: dict[str, Any], region: str) -> str:
    """KMEANS_IMAGE_URI as CloudFormation would resolve it in `region`."""
    text, variables = template["Globals"]["Function"]["Environment"]["Variables"]["KMEANS_IMAGE_URI"]["Fn::Sub"]
    mapping, region_ref, key = variables["Account"]["Fn::FindInMap"]
    assert region_ref == {"Ref": "AWS::Region"}
    values = {
        "Account": template["Mappings"][mapping][region][key],
        "AWS::Region": region,
        "AWS::URLSuffix": url_suffix(region),
    }
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)


@pytest.mark.slow  # imports the SageMaker SDK and resolves every region
def test_every_sdk_region_resolves_to_the_sdk_image_uri(template, image_uris):
    sdk_regions = generator.registries(generator.sdk_kmeans_config())
    assert set(template["Mappings"]["KMeansImageAccounts"]) == set(sdk_regions)
    for region in sdk_regions:
        assert template_image_uri(template, region) == image_uris.retrieve("kmeans", region), region


def test_china_and_govcloud_use_their_partitions_host(template):
    assert template_image_uri(template, "cn-north-1").endswith(".dkr.ecr.cn-north-1.amazonaws.com.cn/kmeans:1")
    assert template_image_uri(template, "us-gov-west-1").endswith(".dkr.ecr.us-gov-west-1.amazonaws.com/kmeans:1")


def test_template_mapping_is_what_the_generator_writes():
    require("sagemaker")
    assert generator.main(["--check", "--template", str(TEMPLATE)]) == 0


def test_generator_replaces_only_its_block():
    text = TEMPLATE.read_text(encoding="utf-8")
    block = generator.render_block({"us-east-1": "382416733822", "eu-west-1": "438346466558"})
    updated = generator.updated_template(text, block)
    assert block in updated
    before, after = text.split(generator.BEGIN)[0], text.split(generator.END + "\n")[1]
    assert updated.startswith(before) and updated.endswith(after)
    assert load_template(TEMPLATE)["Mappings"]["KMeansImageAccounts"]["us-east-1"] == {"Account": "382416733822"}


def test_generator_refuses_unexpected_registry_data():
    with pytest.raises(ValueError, match="repository"):
        generator.registries({"versions": {"1": {"repository": "xgboost", "registries": {}}}})
    with pytest.raises(ValueError, match="unexpected registry entry"):
        generator.registries({"versions": {"1": {"repository": "kmeans", "registries": {"us-east-1": "123"}}}})


def test_sagemaker_role_pulls_from_the_same_registry(template):
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    (pull,) = [
        s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in s["Action"]
    ]
    arn, variables = pull["Resource"]["Fn::Sub"]
    assert arn == "arn:${AWS::Partition}:ecr:${AWS::Region}:${Account}:repository/kmeans"
    assert variables["Account"] == {"Fn::FindInMap": ["KMeansImageAccounts", {"Ref": "AWS::Region"}, "Account"]}


def test_the_region_rule_lists_exactly_the_regions_the_image_mapping_has(template):
    (assertion,) = template["Rules"]["SupportedRegion"]["Assertions"]
    regions, region = assertion["Assert"]["Fn::Contains"]
    assert region == {"Ref": "AWS::Region"}
    assert regions == sorted(template["Mappings"]["KMeansImageAccounts"])
    assert len(regions) == 37
    description = " ".join(assertion["AssertDescription"].split())
    assert all(f" {r}," in description or f" {r}." in description for r in regions)
    assert "K-Means image" in description


def test_the_rule_block_is_what_the_generator_writes_and_replaces_only_itself():
    text = TEMPLATE.read_text(encoding="utf-8")
    rule = generator.render_rule({"eu-west-1": "438346466558", "us-east-1": "382416733822"})
    updated = generator.updated_template(text, generator.render_block({"us-east-1": "382416733822"}), rule)
    assert rule in updated and "us-west-2" not in updated.split(generator.RULE_BEGIN)[1].split(generator.RULE_END)[0]
    parsed = loads_template(updated)["Rules"]["SupportedRegion"]["Assertions"][0]
    assert parsed["Assert"]["Fn::Contains"][0] == ["eu-west-1", "us-east-1"]


@pytest.mark.parametrize(("region", "deploys"), [("us-east-1", True), ("eu-west-1", True), ("mx-central-1", False)])
def test_a_deploy_in_a_region_without_the_image_fails_naming_the_supported_regions(region, deploys):
    with mock_aws():
        builder = StackBuilder(ROOT, "rules-test", region)
        if deploys:
            builder.check_rules()
            return
        with pytest.raises(RuleFailed) as failure:
            builder.check_rules()
    message = str(failure.value)
    assert message.startswith("Rule SupportedRegion failed: SageMaker's built-in K-Means image")
    assert "us-east-1" in message and "mx-central-1" not in message
