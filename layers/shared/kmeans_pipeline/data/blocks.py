"""Bytes in, blocks of whole rows out: gzip unpacked on the fly, lines regrouped into blocks of about
``BLOCK_BYTES``, the header split off, and a block whose quoted field runs on carried into the next one.

Every reader of the raw CSV (the data step's split, the demo's feature reader) walks the object through
:func:`header_and_blocks`, so they agree on where each row starts and which line it is on.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kmeans_pipeline.errors import DataValidationError

BLOCK_BYTES = 1 << 19  # fastest with two workers on this 2-core machine (1 MiB: 20% slower, 30% more memory)
MAX_LINE_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
NEWLINE = b"\n"


def decompressed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The object's bytes; a gzip upload (recognised by its magic number, whatever its name) is unpacked."""
    chunks = iter(chunks)
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        if first:
            yield first
        yield from chunks
        return
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        for chunk in itertools.chain([first], chunks):
            while chunk:
                if inflater.eof:
                    # One member ended and more bytes follow: another member (cat a.gz b.gz, gzip >>), unless
                    # it is the zero padding some tools append.
                    if not chunk.strip(b"\0"):
                        break
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                # Bounded output per call: a small gzip of repeated rows must not inflate into one huge bytes.
                yield inflater.decompress(chunk, BLOCK_BYTES)
                chunk = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as exc:
        raise DataValidationError(f"the object starts like gzip but cannot be unpacked: {exc}") from exc
    if not inflater.eof:
        raise DataValidationError("the gzip object is truncated: it ends before its compressed data does")


class LineTooLong(Exception):
    """A line over MAX_LINE_BYTES, ``lines_before`` lines after the start of the bytes not yet yielded."""

    def __init__(self, lines_before: int) -> None:
        super().__init__(lines_before)
        self.lines_before = lines_before


def line_blocks(chunks: Iterable[bytes], block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of at most about ``block_bytes`` that end with a newline (a final line without one gets one).

    A line longer than MAX_LINE_BYTES raises LineTooLong, so memory stays bounded.
    """
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while len(pending) >= block_bytes:
            cut = pending.rfind(b"\n", 0, block_bytes)
            if cut < 0:
                cut = pending.find(b"\n", block_bytes)
                if cut < 0:
                    if len(pending) > MAX_LINE_BYTES:
                        raise LineTooLong(0)
                    break
            if cut + 1 > MAX_LINE_BYTES and pending.rfind(b"\n", 0, cut) < cut - MAX_LINE_BYTES - 1:
                raise LineTooLong(pending.count(b"\n", 0, cut - MAX_LINE_BYTES))
            yield bytes(pending[: cut + 1])
            del pending[: cut + 1]
    if len(pending) - (pending.rfind(b"\n") + 1) > MAX_LINE_BYTES:
        raise LineTooLong(pending.count(b"\n"))
    if pending:
        if not pending.endswith(b"\n"):
            pending += b"\n"
        yield bytes(pending)


@dataclass(frozen=True)
class RowBlock:
    """Whole rows of the CSV after its header: the bytes, the line the first one starts on, and whether a quoted
    field is still open at the end of the object (then only the exact path can say where it went wrong)."""

    data: bytes
    first_line: int
    unbalanced: bool = False


@dataclass
class RoutedBlock:
    """A block checked and split: its counts, and its feature rows for each channel (header-less CSV)."""

    rows: int
    test_rows: int
    blank: int
    lines: int
    train: bytes
    test: bytes


def too_long(line: int) -> DataValidationError:
    return DataValidationError(f"line {line} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line")


def header_and_blocks(chunks: Iterable[bytes], block_bytes: int = BLOCK_BYTES) -> tuple[bytes, Iterator[RowBlock]]:
    """The header line (with its newline) and the blocks of rows after it, in order.

    A block with an odd number of quotes may end inside a quoted field: it is read on into the next one before it
    is yielded, up to a bound (then it is yielded as it is, and checking it names the problem). A line too long,
    or a gzip object that cannot be unpacked, raises DataValidationError when the iteration reaches it, so a reader
    that checks the blocks before it first reports the first bad line.
    """
    blocks = line_blocks(decompressed(chunks), block_bytes)
    try:
        first = next(blocks, None)
    except LineTooLong as exc:
        raise too_long(1 + exc.lines_before) from None
    if first is None:
        raise DataValidationError("the object is empty: expected a header line and data rows")
    end = first.index(b"\n") + 1
    return first[:end], _row_blocks(itertools.chain([first[end:]], blocks), block_bytes)


def _row_blocks(pieces: Iterator[bytes], block_bytes: int) -> Iterator[RowBlock]:
    line, carried = 2, b""  # the line the next block starts on, and a block read on from
    while True:
        try:
            piece = next(pieces, None)
        except LineTooLong as exc:
            raise too_long(line + carried.count(NEWLINE) + exc.lines_before) from None
        if piece is None:
            break
        block, carried = carried + piece, b""
        if not block:
            continue
        if block.count(b'"') % 2 and len(block) < 4 * max(block_bytes, MAX_LINE_BYTES):
            carried = block  # a quoted field may go on in the next block: read on before deciding
            continue
        yield RowBlock(block, line)
        line += block.count(NEWLINE)
    if carried:
        yield RowBlock(carried, line, unbalanced=True)
