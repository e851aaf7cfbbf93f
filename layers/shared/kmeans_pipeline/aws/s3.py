"""S3 as the steps use it: object URIs, the raw object read in parallel ranged GETs of one checked version, and
channels written as multipart shards (SSE-KMS settings passed in by the caller)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from kmeans_pipeline.aws.clients import error_code, error_message
from kmeans_pipeline.data.blocks import GZIP_MAGIC, header_and_blocks
from kmeans_pipeline.errors import SourceObjectError
from kmeans_pipeline.schemas.dataset import SourceObject

# The raw object is read in ranged GETs of this size, RANGES_IN_FLIGHT at a time while the reader works on the one
# before, so reading overlaps parsing. A worker parses at most about 80 MB/s; two GETs of 4 MiB ahead (each about
# 85 MB/s once started) keep it fed, and hold 12 MiB with the one it reads (three of 8 MiB held 32).
RANGE_BYTES = 4 << 20
RANGES_IN_FLIGHT = 2
# The header is read in GETs of this size (most headers are in the first).
HEAD_BYTES = 64 << 10
# S3 wants every part but the last to hold at least 5 MiB; no more, as every channel a worker writes holds one.
PART_BYTES = 5 << 20


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
            bucket=bucket,
            key=candidate,
            version_id=head.get("VersionId"),
            etag=head["ETag"],
            size=head["ContentLength"],
        )
    version = f" (version {version_id})" if version_id else ""
    raise SourceObjectError(f"s3://{bucket}/{key}{version} does not exist")


def ranged_chunks(
    s3: Any,
    source: SourceObject,
    *,
    range_bytes: int = RANGE_BYTES,
    in_flight: int = RANGES_IN_FLIGHT,
    start: int = 0,
    stop: int | None = None,
) -> Generator[bytes, None, None]:
    """The object's bytes ``[start, stop)`` (default: all of them) in order, fetched as parallel ranged GETs of
    the exact version (or ETag) checked.

    At most ``in_flight`` ranges are held at once, so memory stays ``in_flight x range_bytes``; nothing is fetched
    before the generator is first asked for bytes.
    """
    end_at = source.size if stop is None else min(stop, source.size)
    args: dict[str, Any] = {"Bucket": source.bucket, "Key": source.key}
    if source.version_id:
        args["VersionId"] = source.version_id  # the exact version we checked, even if a new one lands
    else:
        args["IfMatch"] = source.etag  # unversioned: a replaced object fails the read instead of mixing two

    def fetch(first: int) -> bytes:
        end = min(first + range_bytes, end_at) - 1
        try:
            body = s3.get_object(Range=f"bytes={first}-{end}", **args)["Body"]
        except ClientError as exc:
            raise SourceObjectError(f"s3://{source.bucket}/{source.key} cannot be read: {error_message(exc)}") from exc
        try:
            data = body.read()
        finally:
            body.close()
        if len(data) != end - first + 1:
            raise SourceObjectError(f"s3://{source.bucket}/{source.key} changed while it was read")
        return data

    starts = iter(range(start, end_at, range_bytes))
    if in_flight <= 1:
        for first in starts:
            yield fetch(first)
        return
    with ThreadPoolExecutor(in_flight, thread_name_prefix="s3-range") as pool:
        pending = deque(pool.submit(fetch, first) for first in itertools.islice(starts, in_flight))
        try:
            while pending:
                following = next(starts, None)
                if following is not None:
                    pending.append(pool.submit(fetch, following))
                yield pending.popleft().result()  # held by the reader alone: freed as soon as it lets go
        finally:
            for future in pending:
                future.cancel()


def source_header(s3: Any, source: SourceObject) -> tuple[bytes, bool]:
    """The object's header line (with its line feed) and whether the object is gzip, read from its start only:
    DataValidationError when it is empty or its first line is too long (or cannot be unpacked)."""
    chunks = ranged_chunks(s3, source, range_bytes=HEAD_BYTES, in_flight=1)
    try:
        first = next(chunks, b"")
        header, _ = header_and_blocks(itertools.chain([first], chunks))
    finally:
        chunks.close()
    return header, first.startswith(GZIP_MAGIC)


class ShardedChannel:
    """A channel written as numbered objects (part-00000.csv, ...) of about ``shard_bytes`` each.

    Bytes written go to ``lanes`` open shards in turn, each write cut at line boundaries into one piece per lane,
    so every lane gets about the same rows. A shard is a multipart upload flushed every PART_BYTES (or one
    PutObject when it stays small) and completed once it reaches ``shard_bytes``.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        *,
        shard_bytes: int,
        lanes: int,
        extra: dict[str, str],
        name: str = "part-",
    ):
        self._s3, self._bucket, self._prefix, self._extra, self._name = s3, bucket, prefix, extra, name
        self._shard_bytes, self._lanes = shard_bytes, lanes
        self._open: list[_Shard | None] = [None] * lanes
        self.keys: list[str] = []

    def write(self, data: bytes) -> None:
        if self._lanes == 1:
            self._write_lane(0, data)
            return
        start = 0
        for lane in range(self._lanes):
            if lane == self._lanes - 1:
                end = len(data)
            else:
                end = data.find(b"\n", max(start, len(data) * (lane + 1) // self._lanes - 1)) + 1 or len(data)
            if end > start:
                self._write_lane(lane, data[start:end])
            start = end

    def _write_lane(self, lane: int, data: bytes) -> None:
        shard = self._open[lane]
        if shard is None:
            key = f"{self._prefix}{self._name}{len(self.keys):05d}.csv"
            self.keys.append(key)
            shard = self._open[lane] = _Shard(self._s3, self._bucket, key, self._extra)
        shard.write(data)
        if shard.size >= self._shard_bytes:
            shard.close()
            self._open[lane] = None

    def close(self) -> None:
        for lane, shard in enumerate(self._open):
            if shard is not None:
                shard.close()
                self._open[lane] = None

    def abort(self) -> None:
        for shard in self._open:
            if shard is not None:
                shard.abort()


class _Shard:
    def __init__(self, s3: Any, bucket: str, key: str, extra: dict[str, str]) -> None:
        self._s3, self._bucket, self.key, self._extra = s3, bucket, key, extra
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=self.key, **self._extra)[
                "UploadId"
            ]
        number = len(self._parts) + 1
        body, self._buffer = self._buffer, bytearray()  # sent as it is (botocore takes a bytearray), not copied
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        if self._upload_id is None:
            self._s3.put_object(Bucket=self._bucket, Key=self.key, Body=self._buffer, **self._extra)
            return
        if self._buffer:
            self._flush()
        self._s3.complete_multipart_upload(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        if self._upload_id is not None:
            try:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=self._upload_id)
            except ClientError:
                pass  # the bucket's lifecycle rule removes incomplete uploads too
