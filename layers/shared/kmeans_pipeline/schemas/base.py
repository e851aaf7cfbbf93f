"""The base of every JSON schema here: camelCase on the wire, snake_case in Python, unknown keys refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the field: what a user reads in the execution's cause."""
    return describe_errors(exc.errors())


def describe_errors(errors: list) -> str:
    problems = []
    for err in errors:
        where = ".".join(str(part) for part in err["loc"]) or "input"
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)
