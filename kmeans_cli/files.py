"""Where the command reads and writes: the model and the report (a path or s3://), the CSV (a path or stdin), the
output (stdout, or a file that appears only when the command succeeds)."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from kmeans_pipeline.aws.objects import read_body
from kmeans_pipeline.aws.uris import split_s3_uri
from kmeans_pipeline.model.artifact import read_centroids
from kmeans_pipeline.schemas.report import MAX_REPORT_BYTES, EvaluationReport, ReportError, read_report


class Clients:
    """One S3 client, made on first use (a local run never creates one)."""

    def __init__(self, s3: Any = None):
        self._s3 = s3

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from kmeans_pipeline.aws.clients import client

            self._s3 = client("s3")
        return self._s3


def read_model(model: str, clients: Clients) -> np.ndarray:
    return read_centroids(model, s3=clients.s3 if model.startswith("s3://") else None)


def load_report(source: str, clients: Clients) -> EvaluationReport:
    """The evaluation report at a path or s3:// URI, validated; ReportError (a ValueError) naming what is wrong."""
    if source.startswith("s3://"):
        bucket, key = split_s3_uri(source)
        from botocore.exceptions import ClientError

        try:
            answer = clients.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ReportError(f"report {source} cannot be read ({code})") from None
        raw = read_body(answer, MAX_REPORT_BYTES + 1)
    else:
        with open(source, "rb") as fh:
            raw = fh.read(MAX_REPORT_BYTES + 1)
    return read_report(raw, source)


@contextmanager
def output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file that appears (atomically) only when the command succeeds."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary file, not the result
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise


@contextmanager
def input_text(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        return
    with open(path, encoding="utf-8-sig", newline="") as fh:
        yield fh
