"""Step 2: read the raw CSV from S3, validate every row, split train/test and write the training channels.

The raw object is only read. Rows stream through: memory does not grow with the input; the channels are
written to local temporary files and uploaded with SSE-KMS (multipart for large files).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
import re
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from kmeans_pipeline.aws import error_code, error_message
from kmeans_pipeline.errors import DataValidationError, SourceObjectError
from kmeans_pipeline.models import Dataset, RunConfig, SourceObject
from kmeans_pipeline.settings import StackSettings

CHANNEL_CONTENT_TYPE = "text/csv;label_size=0"


class StratifiedSplitter:
    """Seeded train/test assignment that keeps each stratum's test share within one row of the target.

    Each row goes to test with a probability equal to its stratum's current deficit, so every stratum (or the
    whole file, unstratified) ends with round(fraction x rows) test rows, give or take one, in random places.
    """

    def __init__(self, test_fraction: float, seed: int) -> None:
        self._fraction = test_fraction
        self._rng = random.Random(seed)
        self._seen: dict[str, int] = {}
        self._tested: dict[str, int] = {}

    def is_test(self, stratum: str = "") -> bool:
        seen = self._seen.get(stratum, 0) + 1
        tested = self._tested.get(stratum, 0)
        deficit = self._fraction * seen - tested
        test = self._rng.random() < deficit
        self._seen[stratum] = seen
        if test:
            self._tested[stratum] = tested + 1
        return test


MAX_LINE_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


def _lines(body: Any) -> Iterator[str]:
    """Decoded text lines of a streaming body, at most MAX_LINE_BYTES each, so memory stays bounded.

    Tolerates a UTF-8 byte-order mark, CRLF endings and a missing final newline.
    """
    pending = b""
    number = 0
    for chunk in _decompressed(body.iter_chunks(_CHUNK_BYTES)):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            yield _decode(raw, number)
        if len(pending) > MAX_LINE_BYTES:
            raise DataValidationError(
                f"line {number + 1} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line"
            )
    if pending:
        yield _decode(pending, number + 1)


def _decompressed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The object's bytes; a gzip upload (recognised by its magic number, whatever its name) is unpacked."""
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        if first:
            yield first
        yield from chunks
        return
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for chunk in itertools.chain([first], chunks):
            yield inflater.decompress(chunk)
        yield inflater.flush()
    except zlib.error as exc:
        raise DataValidationError(f"the object starts like gzip but cannot be unpacked: {exc}") from exc
    if not inflater.eof:
        raise DataValidationError("the gzip object is truncated: it ends before its compressed data does")


def _decode(raw: bytes, number: int) -> str:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"line {number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if number == 1:
        line = line.removeprefix("\ufeff")
    return line.removesuffix("\r")


def head_source(s3: Any, bucket: str, key: str, version_id: str | None = None) -> SourceObject:
    """The object's identity (version, ETag, size); a URL-encoded key from an S3 event is tried decoded too."""
    candidates = [key] + ([unquote_plus(key)] if unquote_plus(key) != key else [])
    for candidate in candidates:
        args = {"Bucket": bucket, "Key": candidate, **({"VersionId": version_id} if version_id else {})}
        try:
            head = s3.head_object(**args)
        except ClientError as exc:
            code = error_code(exc)
            if code in {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}:
                continue
            raise SourceObjectError(f"s3://{bucket}/{candidate} cannot be read: {code} {error_message(exc)}") from exc
        return SourceObject(
            bucket=bucket, key=candidate, version_id=head.get("VersionId"), etag=head["ETag"], size=head["ContentLength"]
        )
    version = f" (version {version_id})" if version_id else ""
    raise SourceObjectError(f"s3://{bucket}/{key}{version} does not exist")


def _parse_header(line: str, config: RunConfig) -> tuple[list[str], list[int], int | None]:
    try:
        header = [name.strip() for name in next(csv.reader([line]))]
    except csv.Error as exc:
        raise DataValidationError(f"line 1: the header cannot be read as CSV: {exc}") from exc
    if len(header) == 1 and ";" in header[0] or "\t" in line:
        raise DataValidationError(
            f"line 1: the header {line[:80]!r} is not comma-separated (found ';' or a tab); save the file as CSV"
        )
    if any(not name for name in header):
        raise DataValidationError(f"line 1: the header has an empty column name: {header}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataValidationError(f"line 1: the header names {', '.join(duplicates)} more than once")
    wanted = config.feature_columns or header
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataValidationError(f"line 1: feature column(s) {', '.join(missing)} not in the header {header}")
    stratify = None
    if config.stratify_column is not None:
        if config.stratify_column not in header:
            raise DataValidationError(f"line 1: stratify column {config.stratify_column} not in the header {header}")
        stratify = header.index(config.stratify_column)
    return header, [header.index(name) for name in wanted], stratify


# What SageMaker's CSV reader and every spreadsheet agree is a number (float() also takes "1_000" and "１").
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = {"nan", "inf", "infinity"}


def _parse_float(text: str, line_number: int, column: str) -> float:
    token = text.strip()
    if token.lower().lstrip("+-") in _NOT_FINITE:
        raise DataValidationError(f"line {line_number}, column {column}: {token!r} is not a finite number")
    if not _NUMBER.fullmatch(token):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is not a number")
    value = float(token)
    if not math.isfinite(value):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is too large for a number")
    return value


def split_csv(lines: Iterator[str], config: RunConfig, train_out: Any, test_out: Any) -> tuple[list[str], int, int, int]:
    """Validate and split CSV lines into header-less feature rows. Returns (feature columns, train, test, blank)."""
    try:
        header_line = next(lines)
    except StopIteration:
        raise DataValidationError("the object is empty: expected a header line and data rows") from None
    if not header_line.strip():
        raise DataValidationError("line 1: the header is blank")
    header, indexes, stratify = _parse_header(header_line, config)
    names = [header[i] for i in indexes]
    splitter = StratifiedSplitter(config.test_fraction, config.seed)
    width = len(header)
    train = test = blank = 0
    reader = csv.reader(lines)
    try:
        for row in reader:
            line_number = reader.line_num + 1  # the header was line 1; a quoted field may span lines
            if not row or all(not field.strip() for field in row):
                blank += 1
                continue
            if len(row) != width:
                raise DataValidationError(f"line {line_number}: {len(row)} fields, but the header has {width}")
            values = [_parse_float(row[i], line_number, header[i]) for i in indexes]
            text = ",".join(repr(v) for v in values) + "\n"
            if splitter.is_test(row[stratify].strip() if stratify is not None else ""):
                test_out.write(text)
                test += 1
            else:
                train_out.write(text)
                train += 1
    except csv.Error as exc:
        raise DataValidationError(f"line {reader.line_num + 1}: {exc}") from exc
    if train + test == 0:
        raise DataValidationError("the object has a header but no data rows")
    if train < config.k:
        raise DataValidationError(
            f"only {train + test} data rows: the training share ({train}) must hold at least k={config.k} rows"
        )
    if test == 0:
        raise DataValidationError(f"only {train + test} data rows: none left for the test channel")
    return names, train, test, blank


def prepare(config: RunConfig, settings: StackSettings, s3: Any, workdir: str | None = None) -> Dataset:
    source = head_source(s3, config.source.bucket, config.source.key, config.source.version_id)
    if source.size > settings.max_input_bytes:
        raise DataValidationError(
            f"s3://{source.bucket}/{source.key} is {source.size:,} bytes; this stack accepts at most "
            f"{settings.max_input_bytes:,} (the MaxInputMegabytes parameter): split it, or gzip it"
        )
    get_args = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        get_args["VersionId"] = source.version_id  # the exact version we checked, even if a new one lands
    try:
        body = s3.get_object(**get_args)["Body"]
    except ClientError as exc:
        raise SourceObjectError(f"s3://{source.bucket}/{source.key} cannot be read: {error_message(exc)}") from exc

    train_key = f"{config.dataset_prefix}train/train.csv"
    test_key = f"{config.dataset_prefix}test/test.csv"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        train_path, test_path = os.path.join(tmp, "train.csv"), os.path.join(tmp, "test.csv")
        with open(train_path, "w", newline="") as train_out, open(test_path, "w", newline="") as test_out:
            try:
                names, train, test, blank = split_csv(_lines(body), config, train_out, test_out)
            finally:
                body.close()
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_arn, "ContentType": "text/csv"}
        for path, key in ((train_path, train_key), (test_path, test_key)):
            s3.upload_file(path, settings.data_bucket, key, ExtraArgs=extra)

    bucket = settings.data_bucket
    return Dataset(
        train_uri=f"s3://{bucket}/{config.dataset_prefix}train/",
        test_uri=f"s3://{bucket}/{config.dataset_prefix}test/",
        train_rows=train,
        test_rows=test,
        skipped_blank_lines=blank,
        feature_columns=names,
        feature_dim=len(names),
        content_type=CHANNEL_CONTENT_TYPE,
        source=source,
    )
