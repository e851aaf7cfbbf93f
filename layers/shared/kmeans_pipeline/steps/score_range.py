"""Score a range: one worker of batch scoring's Distributed Map ("Score the ranges", and "Score ranges again").

The worker reads its byte range of the file as the data step's workers read theirs (moved to line starts, both
quote-state readings followed: :class:`~kmeans_pipeline.aws.range_reading.RangeReading`), reads its records with
the strict ``csv`` reader against the file's header, and scores them exactly as the scoring API does
(:mod:`kmeans_pipeline.aws.scoring`: the serving model's treatment, the endpoint, the small clusters' reference,
the thresholds). It writes ``scores/<name>/<execution>/part-<range>-00000.csv``: the file's columns and
``closest_cluster, distance_to_cluster, reference_cluster, distance_to_reference, score, anomaly, explanation,
warnings, error``, each what the API answers for that record (:func:`~kmeans_pipeline.aws.scoring.record_answers`),
a header on top, SSE-KMS. A record the model cannot score (a value that is no number, a field missing, a negative
amount for a log column) gets the error naming the field and is counted, not a failed batch. The endpoint must still
serve the model the batch was planned with, before and after the range; if not, the range writes no part and its
result names the change, which fails the batch in the summary (one batch, one model). A problem in the file's
structure (a quote never closed, bytes that are not UTF-8) is a result, named by its line in the range: the summary
decides whether it is real.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from kmeans_pipeline.aws.batch import BatchFiles, part_name, result_name
from kmeans_pipeline.aws.range_reading import RangeReading
from kmeans_pipeline.aws.s3 import ShardedChannel, ranged_chunks, source_header
from kmeans_pipeline.aws.scoring import (
    Ragged,
    ServingView,
    encode_records,
    record_answers,
    score_features,
    serving_view,
)
from kmeans_pipeline.data.blocks import RowBlock, header_and_blocks
from kmeans_pipeline.errors import DataValidationError, ModelChanged
from kmeans_pipeline.schemas.scores import ScoreItem, ScoreRangeResult
from kmeans_pipeline.schemas.settings import StackSettings

# What the API answers for a record, as columns (an answer it leaves out is an empty field); warnings joined by "; ".
SCORE_COLUMNS = [
    "closest_cluster",
    "distance_to_cluster",
    "reference_cluster",
    "distance_to_reference",
    "score",
    "anomaly",
    "explanation",
    "warnings",
    "error",
]
# One part file per range, however large: its header on top.
PART_BYTES = 5 << 40
_RECORD = re.compile(r"^record \d+(, |: )")


def score_range(settings: StackSettings, s3: Any, sagemaker: Any, runtime: Any, item: ScoreItem) -> dict:
    files = BatchFiles(s3, settings, item.prefix)
    result = ScoreRangeResult(index=item.index, start=0, end=0, aligned_end=0, line_base=1, lines=0)
    try:
        view = _pinned(settings, s3, sagemaker, item)
    except ModelChanged as exc:
        return _write_result(files, item, result.model_copy(update={"model_changed": str(exc)}))
    header, _ = source_header(s3, item.source)
    text = header.decode("utf-8", errors="replace").removeprefix("\ufeff")
    names = [name.strip() for name in next(csv.reader(io.StringIO(text)))]
    out = ShardedChannel(
        s3,
        files.bucket,
        files.root,
        shard_bytes=PART_BYTES,
        lanes=1,
        extra={**files.extra, "ContentType": "text/csv"},
        name=part_name(item.index).removesuffix(".csv") + "-",
    )
    reading = None if item.gzip else RangeReading(s3, item.source, item.start, item.end, item.again_from)
    try:
        out.write(_csv_line(header_fields(text) + SCORE_COLUMNS))
        if reading is None:
            _, blocks = header_and_blocks(ranged_chunks(s3, item.source))
            result.line_base = 2
        else:
            blocks = reading.blocks()
        for block in blocks:
            _score_block(block, names, view, settings.endpoint_name, runtime, out, result)
        _pinned(settings, s3, sagemaker, item)
        out.close()
        result.part_key = out.keys[0] if out.keys else None
    except DataValidationError as exc:
        out.abort()
        result.error = str(exc)
        if reading is not None:
            reading.drain()
    except ModelChanged as exc:  # its records were scored by two models, or another one: nothing of it is kept
        out.abort()
        result.model_changed = str(exc)
    except BaseException:
        out.abort()
        raise
    if reading is not None:
        result = result.model_copy(update=reading.result_fields())
    else:
        result = result.model_copy(update={"start": 0, "end": item.source.size, "aligned_end": item.source.size})
    return _write_result(files, item, result)


def _write_result(files: BatchFiles, item: ScoreItem, result: ScoreRangeResult) -> dict:
    files.put_json(result_name(item.index, item.again_from is not None), result.to_json())
    return {
        "index": item.index,
        "records": result.records,
        "problem": result.error is not None,
        "modelChanged": result.model_changed is not None,
    }


def header_fields(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text)))


def _pinned(settings: StackSettings, s3: Any, sagemaker: Any, item: ScoreItem) -> ServingView:
    view = serving_view(settings.endpoint_name, settings.data_bucket, sagemaker, s3)
    if view.endpoint_config != item.endpoint_config:
        raise ModelChanged(
            f"endpoint {settings.endpoint_name} now serves {view.endpoint_config}, not {item.endpoint_config} that "
            "the batch was planned with: a batch is scored by one model; upload the file again to score it with "
            "the new one"
        )
    return view


def _records(block: RowBlock, names: list[str]) -> Iterator[tuple[int, list[str], Any]]:
    """(the line it starts on, its fields, the record for scoring) for each record of a block, blank ones skipped."""
    try:
        text = block.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = block.first_line + block.data.count(b"\n", 0, exc.start)
        raise DataValidationError(f"line {line}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    while True:
        line = block.first_line + reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataValidationError(f"line {line}: {exc}") from None
        if not row or all(not cell.strip() for cell in row):
            continue
        yield line, row, dict(zip(names, row)) if len(row) == len(names) else Ragged(len(row), len(names))


def _score_block(
    block: RowBlock,
    names: list[str],
    view: ServingView,
    endpoint: str,
    runtime: Any,
    out: ShardedChannel,
    result: ScoreRangeResult,
) -> None:
    rows = list(_records(block, names))
    if not rows:
        return
    encoded = encode_records([record for _, _, record in rows], view.treatment)
    scored = score_features(encoded.Z, view, endpoint, runtime) if encoded.good else None
    answers = record_answers(view, encoded, scored) if scored is not None else {}
    columns = {i: ["", "", "", "", "", "", "", "", _RECORD.sub("", message)] for i, message in encoded.errors.items()}
    for i, answer in answers.items():
        score, flagged, against = answer["score"], answer["anomaly"], answer.get("reference_cluster")
        columns[i] = [
            str(answer["closest_cluster"]),
            repr(answer["distance_to_cluster"]),
            "" if against is None else str(against),
            repr(answer["distance_to_reference"]) if against is not None else "",
            "" if score is None else repr(score),
            "true" if flagged else "false",
            answer.get("explanation", ""),
            "; ".join(answer.get("warnings", [])),
            "",
        ]
        cluster = answer["closest_cluster"] if against is None else against  # the cluster it is scored against
        counts = result.clusters.setdefault(str(cluster), [0, 0])
        counts[0] += 1
        counts[1] += flagged
        result.flagged += flagged
        result.referred += against is not None
        result.unseen_levels += "warnings" in answer
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    width = len(names)
    for i, (_, row, _) in enumerate(rows):  # a ragged record is cut or padded to the header (its error says so)
        writer.writerow(row[:width] + [""] * (width - len(row)) + columns[i])
    out.write(buffer.getvalue().encode())
    result.records += len(rows)
    result.scored += len(encoded.good)
    result.errors += len(encoded.errors)


def _csv_line(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode()
