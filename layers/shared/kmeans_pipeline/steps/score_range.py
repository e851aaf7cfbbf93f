"""Score a range: one worker of batch scoring's Distributed Map ("Score the ranges", and "Score ranges again").

The worker reads its byte range of the file as the data step's workers read theirs (moved to line starts, both
quote-state readings followed: :class:`~kmeans_pipeline.aws.range_reading.RangeReading`), reads its records with
the strict ``csv`` reader against the file's header, and scores them exactly as the scoring API does
(:mod:`kmeans_pipeline.aws.scoring`: the serving model's treatment, the endpoint, the small clusters' reference,
the thresholds). It writes ``scores/<name>/part-<range>.csv``: the file's columns and ``closest_cluster,
distance_to_cluster,score,anomaly,explanation,error`` (why a flagged record is flagged, as the API says it), a
header on top, SSE-KMS. A record the model cannot score (a value
that is no number, a field missing, a negative amount for a log column) gets the error naming the field and is
counted, not a failed batch. The endpoint must still serve the model the batch was planned with, before and after
the range (else the range fails: one batch, one model). A problem in the file's structure (a quote never closed,
bytes that are not UTF-8) is a result, named by its line in the range: the summary decides whether it is real.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from typing import Any

from kmeans_pipeline.aws.batch import BatchFiles, part_name, result_name
from kmeans_pipeline.aws.range_reading import RangeReading
from kmeans_pipeline.aws.s3 import ShardedChannel, ranged_chunks, source_header
from kmeans_pipeline.aws.scoring import Ragged, ServingView, encode_records, score_features, serving_view
from kmeans_pipeline.data.blocks import RowBlock, header_and_blocks
from kmeans_pipeline.errors import DataValidationError, PipelineError
from kmeans_pipeline.schemas.scores import ScoreItem, ScoreRangeResult
from kmeans_pipeline.schemas.settings import StackSettings

SCORE_COLUMNS = ["closest_cluster", "distance_to_cluster", "score", "anomaly", "explanation", "error"]
# One part file per range, however large: its header on top.
PART_BYTES = 5 << 40
_RECORD = re.compile(r"^record \d+(, |: )")


class ModelChanged(PipelineError):
    """The endpoint serves another model than the one the batch was planned with."""


def score_range(settings: StackSettings, s3: Any, sagemaker: Any, runtime: Any, item: ScoreItem) -> dict:
    files = BatchFiles(s3, settings, item.name)
    view = _pinned(settings, s3, sagemaker, item)
    header, _ = source_header(s3, item.source)
    text = header.decode("utf-8", errors="replace").removeprefix("\ufeff")
    names = [name.strip() for name in next(csv.reader(io.StringIO(text)))]
    out = ShardedChannel(
        s3,
        files.bucket,
        files.prefix,
        shard_bytes=PART_BYTES,
        lanes=1,
        extra={**files.extra, "ContentType": "text/csv"},
        name=part_name(item.index).removesuffix(".csv") + "-",
    )
    result = ScoreRangeResult(index=item.index, start=0, end=0, aligned_end=0, line_base=1, lines=0)
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
    except BaseException:
        out.abort()
        raise
    if reading is not None:
        result = result.model_copy(update=reading.result_fields())
    else:
        result = result.model_copy(update={"start": 0, "end": item.source.size, "aligned_end": item.source.size})
    files.put_json(files.work_key(result_name(item.index, item.again_from is not None)), result.to_json())
    return {"index": item.index, "records": result.records, "problem": result.error is not None}


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
    Z, good, errors = encoded.Z, encoded.good, encoded.errors
    scored = score_features(Z, view, endpoint, runtime) if good else None
    explanations = scored.explanations(view, encoded) if scored is not None else {}
    answers: dict[int, list[str]] = {i: ["", "", "", "", "", _RECORD.sub("", message)] for i, message in errors.items()}
    for r, i in enumerate(good):
        assert scored is not None
        score = float(scored.scores[r])
        cluster = int(scored.closest[r])
        flagged = bool(score > 1)
        answers[i] = [
            str(cluster),
            repr(float(scored.distance[r])),
            repr(score) if math.isfinite(score) else "",
            "true" if flagged else "false",
            explanations[r].text if r in explanations else "",
            "",
        ]
        counts = result.clusters.setdefault(str(cluster), [0, 0])
        counts[0] += 1
        counts[1] += flagged
        result.flagged += flagged
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    width = len(names)
    for i, (_, row, _) in enumerate(rows):  # a ragged record is cut or padded to the header (its error says so)
        writer.writerow(row[:width] + [""] * (width - len(row)) + answers[i])
    out.write(buffer.getvalue().encode())
    result.records += len(rows)
    result.scored += len(good)
    result.errors += len(errors)


def _csv_line(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode()
