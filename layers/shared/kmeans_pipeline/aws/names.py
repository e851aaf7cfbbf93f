"""SageMaker resource names for a run: within SageMaker's limits and patterns, unique per execution, and the
same every time a step of that execution is retried (so a retried Create finds its own resource)."""

from __future__ import annotations

import hashlib
import re

TUNING_JOB_NAME_MAX = 32
NAME_MAX = 63
RUN_ID_LENGTH = 10
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def run_id(execution_name: str, execution_start_time: str) -> str:
    """A 10-character id for one execution; the start time keeps a reused execution name from colliding."""
    digest = hashlib.sha256(f"{execution_name}|{execution_start_time}".encode()).hexdigest()
    return digest[:RUN_ID_LENGTH]


def run_resource_name(prefix: str, rid: str, limit: int = TUNING_JOB_NAME_MAX) -> str:
    name = f"{prefix}-{rid}"
    if len(name) > limit or not _SAGEMAKER_NAME.match(name):
        raise ValueError(f"SageMaker name {name!r} is not valid (at most {limit} of letters, digits and -)")
    return name
