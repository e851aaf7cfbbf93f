"""Read a CloudFormation/SAM template into plain data, with short-form tags in their long form.

`!Ref X` becomes `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Condition C` becomes
`{"Condition": "C"}` and every other `!Name` becomes `{"Fn::Name": ...}`, which is what CloudFormation itself does.
Dates stay strings (`Version: 2012-10-17`), and a key given twice in one mapping is an error, as in CloudFormation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["TemplateError", "load_template", "loads_template"]


class TemplateError(ValueError):
    """The template is not valid YAML or JSON, or repeats a key."""


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver and with CloudFormation's short-form tags."""


# CloudFormation reads `2012-10-17` as a string; PyYAML would make it a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _TemplateLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise TemplateError(f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


def _node_value(loader: _TemplateLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return _construct_mapping(loader, node)


def _construct_short_form(loader: _TemplateLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


_TemplateLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_TemplateLoader.add_multi_constructor("!", _construct_short_form)


def loads_template(text: str) -> dict[str, Any]:
    """Parse template text (YAML or JSON) into plain dicts and lists."""
    try:
        data = yaml.load(text, Loader=_TemplateLoader)  # a SafeLoader subclass, so safe
    except yaml.YAMLError as exc:
        raise TemplateError(str(exc)) from exc
    if not isinstance(data, dict):
        raise TemplateError("a template must be a mapping at the top level")
    return data


def load_template(path: str | Path) -> dict[str, Any]:
    """Read the template at `path` into plain dicts and lists (`!Ref X` -> `{"Ref": "X"}` and so on)."""
    return loads_template(Path(path).read_text(encoding="utf-8"))
