"""Check drift: compare what the serving model scored in a recent window with its evaluation report.

Run by the stack's drift schedule (every ``DriftCheckMinutes``), or by hand with an explicit window
(``{"windowStart": "...Z", "windowEnd": "...Z"}``). It reads the records the scoring API kept for the serving model
(``aws.scored``), tests them against the report's baseline (``model.drift``: PSI on distances and on each feature
column, and the flagged share against the evaluation's), and publishes the findings as CloudWatch metrics with PutMetricData, timestamped
at the window's end: ``DriftDetected`` (1 or 0, what the stack's drift alarm watches), ``DistancePSI``,
``MaxFeaturePSI``, ``FeaturePSI`` per column, ``FlaggedShare``, and ``DriftWindowRecords``. A window with fewer
than ``DriftMinRecords`` records publishes only ``DriftWindowRecords``: no traffic is not drift, and the alarm
treats the missing ``DriftDetected`` as not breaching. A busy window is checked on a seeded random sample of its
records (aws/scored.py says how many it reads at most), and ``sample`` in the output says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kmeans_pipeline.aws.scored import read_window
from kmeans_pipeline.aws.serving import report_key, serving_model, serving_report
from kmeans_pipeline.aws.telemetry import COLUMN, ENDPOINT
from kmeans_pipeline.errors import InvalidInputError
from kmeans_pipeline.model.drift import Thresholds, compare
from kmeans_pipeline.schemas.report import ReportError
from kmeans_pipeline.schemas.results import DriftCheck
from kmeans_pipeline.schemas.settings import DriftSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

SCHEDULED_EVENT = "Scheduled Event"


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be an ISO 8601 time such as 2026-12-06T10:00:00Z, got {value!r}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"{where} {value!r} is not an ISO 8601 time such as 2026-12-06T10:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def window_of(event: Any, minutes: int, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the window a check event asks for: explicit, else the ``minutes`` before the schedule's
    time (or now)."""
    if not isinstance(event, dict):
        raise InvalidInputError(f"The drift check's input must be a JSON object, not {type(event).__name__}")
    if "windowStart" in event or "windowEnd" in event:
        start, end = _time(event.get("windowStart"), "windowStart"), _time(event.get("windowEnd"), "windowEnd")
        if not start < end:
            raise InvalidInputError(f"windowStart {event['windowStart']} is not before windowEnd {event['windowEnd']}")
        return start, end
    end = _time(event["time"], "time") if event.get("detail-type") == SCHEDULED_EVENT else now
    return end - timedelta(minutes=minutes), end


def _datum(name: str, value: float, endpoint: str, when: datetime, unit: str = "None", **dims: str) -> dict:
    dimensions = [{"Name": ENDPOINT, "Value": endpoint}] + [{"Name": k, "Value": v} for k, v in dims.items()]
    return {"MetricName": name, "Dimensions": dimensions, "Timestamp": when, "Value": float(value), "Unit": unit}


def publish(cloudwatch: Any, namespace: str, check: DriftCheck, when: datetime) -> list[str]:
    """PutMetricData of what the check found; returns the metric names written."""
    endpoint = check.endpoint
    data = [_datum("DriftWindowRecords", check.records, endpoint, when, "Count")]
    if check.drift is not None:
        data.append(_datum("DriftDetected", 1.0 if check.drift else 0.0, endpoint, when))
        if check.flagged_share is not None:
            data.append(_datum("FlaggedShare", check.flagged_share, endpoint, when))
        if check.distance_psi is not None:
            data.append(_datum("DistancePSI", check.distance_psi, endpoint, when))
        if check.column_psi:
            data.append(_datum("MaxFeaturePSI", max(check.column_psi.values()), endpoint, when))
            data += [_datum("FeaturePSI", v, endpoint, when, **{COLUMN: c}) for c, v in check.column_psi.items()]
    for start in range(0, len(data), 1000):  # PutMetricData takes at most 1,000 data a call
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])
    return sorted({d["MetricName"] for d in data})


def check_drift(
    event: Any,
    endpoint: str,
    bucket: str,
    settings: DriftSettings,
    sagemaker: SageMakerClient,
    s3: S3Client,
    cloudwatch: Any,
    now: datetime | None = None,
) -> DriftCheck:
    start, end = window_of(event, settings.drift_window_minutes, now or datetime.now(UTC))
    check = DriftCheck(
        endpoint=endpoint,
        window_start=start.isoformat().replace("+00:00", "Z"),
        window_end=end.isoformat().replace("+00:00", "Z"),
    )
    serving = serving_model(sagemaker, endpoint)
    if serving is None:
        check.findings = [f"endpoint {endpoint} serves no model: nothing to check"]
        check.metrics = publish(cloudwatch, settings.powertools_metrics_namespace, check, end)
        return check
    check.model = serving["modelName"]
    check.report_uri = f"s3://{bucket}/{report_key(check.model)}"
    try:
        report = serving_report(s3, bucket, check.model)
    except ReportError as exc:
        report, problem = None, str(exc)
    else:
        problem = f"the serving model {check.model} has no evaluation report at {check.report_uri}"
    if report is None:
        check.findings = [f"{problem}: nothing to compare with"]
        check.metrics = publish(cloudwatch, settings.powertools_metrics_namespace, check, end)
        return check
    window = read_window(s3, bucket, endpoint, check.model, report.feature_columns, start, end)
    result = compare(
        None if report.baseline is None else report.baseline.to_json(),
        report.flagged.per_cluster,
        report.evaluated_rows,
        report.feature_columns,
        window.raw,
        window.distance,
        window.anomaly,
        Thresholds(
            psi=settings.drift_psi_threshold,
            flagged_p_value=settings.drift_flagged_p_value,
            min_records=settings.drift_min_records,
        ),
    )
    check.objects, check.listed_objects, check.sample = window.objects, window.listed, window.sample
    check.records, check.flagged = result.records, result.flagged
    check.flagged_share = result.flagged_share if result.records else None
    check.expected_flagged_share = result.expected_flagged_share
    check.flagged_p_value, check.distance_psi = result.flagged_p_value, result.distance_psi
    check.column_psi, check.drift = result.column_psi, result.drift
    check.findings, check.watch = result.findings, result.watch
    if report.baseline is None and result.drift is not None:
        check.watch.append(
            f"the report of {check.model} has no baseline (written before drift checks): PSI not computed"
        )
    check.metrics = publish(cloudwatch, settings.powertools_metrics_namespace, check, end)
    return check
