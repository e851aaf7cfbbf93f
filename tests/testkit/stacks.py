"""The offline stack (OfflineAWS) as tests share it: inputs that run fast, and resets between tests."""

from __future__ import annotations

import time
from typing import Any

FAST = {"pollSeconds": 0, "maxTrainingJobs": 2, "maxParallelTrainingJobs": 2, "k": 3, "gateTolerancePercent": 1000}
GOOD = "tranCode,Amount\n" + "".join(f"{i % 3 + 1},{(i % 7) * 10 + 5}.5\n" for i in range(300))


def reset_faults(aws: Any) -> None:
    """Put an OfflineAWS shared by a module's tests back as it started: no injected crash, stand-in fault or
    slowed timing carries over into the next test (the endpoint and earlier executions do)."""
    aws.crashes.clear()
    aws.standin.faults.__init__()
    aws.standin.timing.__init__()


def without_endpoint(aws: Any) -> Any:
    """Delete the shared stack's endpoint by hand, if an earlier test made one, and wait until it is gone: the
    next run deploys it for the first time, as on a new stack."""
    from botocore.exceptions import ClientError

    sm = aws.client("sagemaker")
    try:
        sm.delete_endpoint(EndpointName=aws.endpoint_name)
    except ClientError:
        return aws  # never created
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            sm.describe_endpoint(EndpointName=aws.endpoint_name)
        except ClientError:
            return aws
        time.sleep(0.05)
    raise TimeoutError(f"endpoint {aws.endpoint_name} was not deleted within 30 s")
