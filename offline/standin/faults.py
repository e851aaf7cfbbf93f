"""What a test or the demo controls: failures to inject and how long the simulated work takes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Failures to inject; all off by default.

    The tuning/training and endpoint faults are read when the Create/Update call arrives, so changing
    them affects resources created afterwards. ``throttle_creates`` counts afresh whenever its value
    or the ``faults`` object changes (or after ``reset_throttling()``).
    """

    tuning_job_fails: str | None = None
    training_jobs_fail: str | None = None
    endpoint_creation_fails: str | None = None
    endpoint_update_fails: str | None = None
    throttle_creates: int = 0
    # The first N calls of each Create* refused with ResourceLimitExceeded (an account quota reached);
    # `limit_only` narrows that to one operation, e.g. "CreateEndpoint".
    limit_creates: int = 0
    limit_only: str | None = None
    # InvokeEndpoint answers with every distance_to_cluster doubled (read per request), as a container serving
    # something other than its artifact would: what the pipeline's endpoint check must catch.
    endpoint_answers_wrong: bool = False
    # InvokeEndpoint answers with squared distances: a container whose unit is not the one documented.
    endpoint_answers_squared: bool = False


@dataclass
class Timing:
    """How long the simulated asynchronous work takes (seconds)."""

    endpoint_seconds: float = 0.5  # Creating / Updating before InService or Failed
    training_job_min_seconds: float = 0.0  # a training job lasts at least this long
    endpoint_delete_seconds: float = 0.05  # Deleting before the endpoint is gone
