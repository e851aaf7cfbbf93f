"""What an operator follows a run by: log lines that carry the run id and the execution name, and CloudWatch
metrics in the Embedded Metric Format (EMF).

An EMF document is a log line: CloudWatch Logs turns it into metrics in the stack's namespace
(``POWERTOOLS_METRICS_NAMESPACE``), so the functions that count with it need no ``cloudwatch:PutMetricData``. One
function does call PutMetricData: the drift check (steps/check_drift.py), whose role may, for the stack's namespace
only. Each handler's metrics are flushed when its invocation ends (Powertools' ``log_metrics``); an invocation with
nothing to report writes nothing. Every metric of the stack names a dimension the same way (``ENDPOINT`` ...), so
that EMF counts and drift metrics of one endpoint can be read together; Powertools adds its own ``service``.
docs/operations.md lists the metrics and a Logs Insights query that follows one run.
"""

from __future__ import annotations

import json
import sys
import threading

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from kmeans_pipeline.schemas.run import RunConfig
from kmeans_pipeline.schemas.settings import function_environment

NAMESPACE_VARIABLE = "POWERTOOLS_METRICS_NAMESPACE"
# The dimensions of the stack's metrics, in CloudWatch's own casing (SageMaker's are EndpointName, VariantName).
ENDPOINT = "Endpoint"
MODEL = "Model"
COMPARISON = "Comparison"
COLUMN = "Column"


class _LogStreamEMF(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider with three differences: a function's metrics are its own (Powertools' default
    shares one set per process); the EMF line goes to the stream the function's log lines go to, taken when the
    handler is loaded as Powertools' Logger takes it (stdout in Lambda); and nothing at all is written when there is
    nothing to report (Powertools warns). In Lambda one invocation runs at a time; the lock is for hosts that run a
    function's invocations on threads of one process (the offline runner), so a flush never reads a half-added set."""

    def __init__(self) -> None:
        super().__init__(metric_set={}, dimension_set={}, metadata_set={}, default_dimensions={})
        self._stream = sys.stdout
        self._lock = threading.RLock()

    def record(self, dimensions: dict[str, str], values: dict[str, float]) -> None:
        with self._lock:
            for name, value in dimensions.items():
                self.add_dimension(name=name, value=value)
            for name, number in values.items():
                self.add_metric(name=name, unit=MetricUnit.Count, value=number)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        with self._lock:
            if self.metric_set and not is_metrics_disabled():
                # The function's own variable where its host sets it per invocation (offline), else the one read
                # at load; without a namespace Powertools refuses the document (SchemaValidationError).
                self.namespace = function_environment().get(NAMESPACE_VARIABLE) or self.namespace
                document = self.serialize_metric_set()
                print(json.dumps(document, separators=(",", ":")), file=self._stream, flush=True)
            self.clear_metrics()


def step_metrics() -> Metrics:
    """A handler's metrics: ``@metrics.log_metrics`` on the handler flushes them once per invocation."""
    return Metrics(provider=_LogStreamEMF())


def count(metrics: Metrics, dimensions: dict[str, str] | None = None, **values: float) -> None:
    """Add Count metrics (``TrainRows=...``) with these dimensions besides the service's."""
    provider = metrics.provider
    assert isinstance(provider, _LogStreamEMF), "metrics made by step_metrics()"
    provider.record(dimensions or {}, values)


def follow_run(logger: Logger, config: RunConfig | None = None, *, execution_name: str | None = None) -> None:
    """Every later log line of this invocation carries the run's id and execution name (Logs Insights: filter by
    either across the functions' log groups); before the run has an id, its execution name alone. Thread-local
    keys: an invocation never lends them to another."""
    if config is not None:
        logger.thread_safe_append_keys(run_id=config.run_id, execution_name=config.execution_name)
    elif execution_name is not None:
        logger.thread_safe_append_keys(execution_name=execution_name)
