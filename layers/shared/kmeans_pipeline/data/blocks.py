"""Bytes in, blocks of whole rows out: gzip unpacked on the fly, lines regrouped into blocks of about
``BLOCK_BYTES`` (the data step's end where its spans of whole windows do, see :func:`block_span`), the header
split off, and a record whose quoted field runs on past a block carried into the next.

Every reader of the raw CSV (the data step's split, the demo's feature reader) walks the object through
:func:`header_and_blocks`, so they agree on where each row starts and which line it is on.

Where a quoted field is open is decided as Python's strict ``csv`` reader decides it (:func:`quote_states`): a
quote opens a field only at the field's start; one inside an unquoted field (an inch mark, ``12" pipe``) is text.
So a block ends between rows exactly where the strict reader's rows end, whatever the block boundaries.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from kmeans_pipeline.errors import DataValidationError

BLOCK_BYTES = 1 << 19  # fastest with two workers on this 2-core machine (1 MiB: 20% slower, 30% more memory)
MAX_LINE_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
NEWLINE = b"\n"
# A record (one row, its quoted fields perhaps spanning lines) is read on across blocks up to this many bytes.
MAX_RECORD_BYTES = 4 * MAX_LINE_BYTES
_QUOTE, _COMMA, _LF = ord('"'), ord(","), ord("\n")


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
    """A line over MAX_LINE_BYTES, ``lines_before`` lines after the start of the bytes not yet yielded;
    ``carriage_returns``: the line holds CRs (a file with CR line endings is one endless line)."""

    def __init__(self, lines_before: int, carriage_returns: bool = False) -> None:
        super().__init__(lines_before)
        self.lines_before = lines_before
        self.carriage_returns = carriage_returns


def line_blocks(
    chunks: Iterable[bytes], block_bytes: int = BLOCK_BYTES, window_bytes: int | None = None, offset: int = 0
) -> Iterator[bytes]:
    """Blocks of at most about ``block_bytes`` that end with a newline (a final line without one gets one).

    With ``window_bytes`` (``offset``: where the first byte is in the object), a block also ends with the line that
    holds a window's last byte: where no quoted field holds a line break, every block's rows then start in one window
    and :func:`by_window` has nothing to cut. A line longer than MAX_LINE_BYTES raises LineTooLong; the chunks are
    taken in a block at a time, so the bytes held stay about a block, whatever the chunks' size.
    """
    pending = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        for at in range(0, len(view), block_bytes):
            pending += view[at : at + block_bytes]
            while True:
                to_window = window_bytes - offset % window_bytes if window_bytes else None
                cut = _block_end(pending, block_bytes, to_window if to_window and to_window <= block_bytes else None)
                if cut is None:
                    break
                yield bytes(pending[: cut + 1])
                del pending[: cut + 1]
                offset += cut + 1
    last = pending.rfind(b"\n") + 1
    if len(pending) - last > MAX_LINE_BYTES:
        raise LineTooLong(pending.count(b"\n"), b"\r" in pending[last:])
    if pending:
        if not pending.endswith(b"\n"):
            pending += b"\n"
        yield bytes(pending)


def _block_end(pending: bytearray, block_bytes: int, to_window: int | None) -> int | None:
    """Where the next block ends (the offset of its last newline): the line that holds byte ``to_window`` - 1 (the
    window's last) when given, else the last line that ends within ``block_bytes`` (or the first one past them);
    None until ``pending`` holds it. LineTooLong if its last line is too long."""
    if to_window is not None:
        if len(pending) < to_window:
            return None
        cut = pending.find(b"\n", to_window - 1)
        if cut < 0:  # the line that crosses into the next window goes on
            start = pending.rfind(b"\n", 0, to_window - 1) + 1
            if len(pending) - start > MAX_LINE_BYTES:
                raise LineTooLong(pending.count(b"\n", 0, start), b"\r" in pending[start:])
            return None
    else:
        if len(pending) < block_bytes:
            return None
        cut = pending.rfind(b"\n", 0, block_bytes)
        if cut < 0:
            cut = pending.find(b"\n", block_bytes)
            if cut < 0:
                if len(pending) > MAX_LINE_BYTES:
                    raise LineTooLong(0, b"\r" in pending)
                return None
    if cut + 1 > MAX_LINE_BYTES and pending.rfind(b"\n", 0, cut) < cut - MAX_LINE_BYTES - 1:
        start = pending.rfind(b"\n", 0, cut - MAX_LINE_BYTES) + 1
        raise LineTooLong(pending.count(b"\n", 0, start), b"\r" in pending[start:cut])
    return cut


def block_span(window_bytes: int, block_bytes: int = BLOCK_BYTES) -> int:
    """The data step's blocks end where a span of this many bytes does (a whole number of windows, about
    ``block_bytes``): a block's rows start in one span, so a window's rows are in consecutive blocks, and blocks
    are as large as the fastest size whatever the window (see :func:`~kmeans_pipeline.data.split.split_blocks`)."""
    return window_bytes * max(1, block_bytes // window_bytes)


@dataclass(frozen=True)
class RowBlock:
    """Whole rows of the CSV after its header: the bytes, the line the first one starts on, and whether a quoted
    field is still open at its end (then only the exact path can say where it went wrong): ``unbalanced`` at the
    end of the object, ``overlong`` when the record ran on past MAX_RECORD_BYTES. ``offset``: where its first byte
    is, in the (uncompressed) object or relative to where the reader started (see :func:`row_blocks`)."""

    data: bytes
    first_line: int
    unbalanced: bool = False
    overlong: bool = False
    offset: int = 0

    @property
    def last_line_start(self) -> int:
        """Where its last line starts in ``data``: no row of it starts after."""
        return self.data.rfind(NEWLINE, 0, len(self.data) - 1) + 1


@dataclass
class RoutedBlock:
    """A block checked and split: its counts, its feature rows for each channel (header-less CSV), and the sample
    keys of its training rows, in order (see :class:`~kmeans_pipeline.data.splitter.WindowSplitter`)."""

    rows: int
    test_rows: int
    blank: int
    lines: int
    train: bytes
    test: bytes
    keys: np.ndarray | None = None
    # Where its training rows' windows change (a block may hold rows of several windows), if they do: (byte of
    # ``train``, row) where each window after the first starts; the learner takes each window's rows on their own.
    train_cuts: list[tuple[int, int]] | None = None

    def train_windows(self) -> Iterator[tuple[bytes, np.ndarray | None]]:
        """Its training rows and their sample keys, a window at a time."""
        if not self.train_cuts:
            yield self.train, self.keys
            return
        keys, at, row = self.keys, 0, 0
        for cut, next_row in [*self.train_cuts, (len(self.train), len(keys) if keys is not None else 0)]:
            yield self.train[at:cut], None if keys is None else keys[row:next_row]
            at, row = cut, next_row


def too_long(line: int, carriage_returns: bool = False) -> DataValidationError:
    if carriage_returns:
        return DataValidationError(
            f"line {line} is longer than {MAX_LINE_BYTES:,} bytes and holds carriage returns: the file uses CR "
            "line endings (old Mac style); save it with LF or CRLF line endings"
        )
    return DataValidationError(f"line {line} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line")


@dataclass(frozen=True)
class QuoteRuns:
    """The runs of consecutive quotes in a block, and whether a quoted field is open after each (``inside``)."""

    starts: np.ndarray  # position of each run's first quote
    inside: np.ndarray  # bool: a quoted field is open right after the run

    def open_at(self, position: int) -> int | None:
        """The position of the quote that opened the field still open at ``position`` (None if none is)."""
        run = int(np.searchsorted(self.starts, position)) - 1
        if run < 0 or not self.inside[run]:
            return None
        closed = np.flatnonzero(~self.inside[: run + 1])
        return int(self.starts[closed[-1] + 1 if len(closed) else 0])


def quote_states(block: bytes) -> QuoteRuns:
    """Where quoted fields open and close in a block that starts at a row's start.

    As the strict ``csv`` reader reads them: inside a quoted field a run of quotes keeps it open when even (doubled
    quotes) and closes it when odd; outside, a run at a field's start (after a comma, a line feed or the block's
    start) opens a field when odd (an even one is an empty field or doubled quotes in one), and a run anywhere
    else is text in an unquoted field. So an odd run toggles the state at a field's start and closes (or leaves
    closed) elsewhere, and an even run changes nothing: a few vectorised passes over the quotes' positions.
    """
    a = np.frombuffer(block, dtype=np.uint8)
    q = np.flatnonzero(a == _QUOTE)
    if not len(q):
        return QuoteRuns(q, np.zeros(0, dtype=bool))
    first = np.empty(len(q), dtype=bool)
    first[0] = True
    np.not_equal(q[1:] - q[:-1], 1, out=first[1:])
    heads = np.flatnonzero(first)
    starts = q[heads]
    odd = (np.diff(heads, append=len(q)) & 1).astype(bool)
    before = a[np.maximum(starts - 1, 0)]
    at_field_start = (starts == 0) | (before == _COMMA) | (before == _LF)
    toggles = np.cumsum(odd & at_field_start)
    resets = odd & ~at_field_start
    last_reset = np.maximum.accumulate(np.where(resets, np.arange(len(starts)), -1))
    since = toggles - np.where(last_reset >= 0, toggles[np.maximum(last_reset, 0)], 0)
    return QuoteRuns(starts, (since & 1).astype(bool))


def open_record_start(block: bytes) -> int | None:
    """None when a block (starting at a row's start) ends between rows; else the offset where its last, unfinished
    record starts (the byte after the last line feed outside quotes, 0 if there is none)."""
    if b'"' not in block:
        return None
    a = np.frombuffer(block, dtype=np.uint8)
    q = np.flatnonzero(a == _QUOTE)
    # The usual case, quickly: when every quote with an even number before it opens a field (at a field's start)
    # or follows a quote, quotes pair up by parity (each run's effect is then its length's), and an even count
    # ends between rows. Anything else (a quote inside an unquoted field) takes the whole reckoning.
    openers = q[::2]
    before = a[np.maximum(openers - 1, 0)]
    if len(q) % 2 == 0 and ((before == _COMMA) | (before == _LF) | (before == _QUOTE) | (openers == 0)).all():
        return None
    runs = quote_states(block)
    if not runs.inside[-1]:
        return None
    opened = runs.open_at(len(block))  # the record's last field: every row end is a line feed before it...
    newlines = np.flatnonzero(a[:opened] == _LF)
    if not len(newlines):
        return 0
    run = np.searchsorted(runs.starts, newlines) - 1  # ...outside quotes
    outside = np.where(run >= 0, ~runs.inside[np.maximum(run, 0)], True)
    ends = newlines[outside]
    return int(ends[-1]) + 1 if len(ends) else 0


def header_and_blocks(
    chunks: Iterable[bytes], block_bytes: int = BLOCK_BYTES, window_bytes: int | None = None
) -> tuple[bytes, Iterator[RowBlock]]:
    """The header line (with its newline) and the blocks of rows after it, in order, each with its offset in the
    (uncompressed) object; with ``window_bytes``, each block's rows start in one window (:func:`by_window`).

    A block may end inside a quoted field: its complete rows are yielded, and its last record is read on into the
    next block, up to MAX_RECORD_BYTES (then it is yielded ``overlong``, and checking it names the problem). A line
    too long, or a gzip object that cannot be unpacked, raises DataValidationError when the iteration reaches it,
    so a reader that checks the blocks before it first reports the first bad line.
    """
    blocks = line_blocks(decompressed(chunks), block_bytes, window_bytes)
    try:
        first = next(blocks, None)
    except LineTooLong as exc:
        raise too_long(1 + exc.lines_before, exc.carriage_returns) from None
    if first is None:
        raise DataValidationError("the object is empty: expected a header line and data rows")
    end = first.index(b"\n") + 1
    rows = row_blocks(itertools.chain([first[end:]], blocks), block_bytes, offset=end)
    if window_bytes is None:
        return first[:end], rows
    return first[:end], (piece for block in rows for piece in by_window(block, window_bytes))


def row_blocks(
    pieces: Iterator[bytes],
    block_bytes: int = BLOCK_BYTES,
    first_line: int = 2,
    offset: int = 0,
    open_record: Callable[[bytes], int | None] | None = None,
    newlines: Callable[[bytes], int] | None = None,
) -> Iterator[RowBlock]:
    """Blocks of whole rows from pieces of whole lines (as ``line_blocks`` gives them) that start at a row's start,
    on line ``first_line`` onwards (the header's line 1 precedes an object's first data line), the first at
    ``offset``. ``open_record``: :func:`open_record_start`, and ``newlines``: a block's line feeds, from a reader
    that has already read the pieces so."""
    open_record = open_record or open_record_start
    newlines = newlines or _newlines
    line, carried = first_line, b""  # the line the next block starts on, and an unfinished record read on from
    while True:
        try:
            piece = next(pieces, None)
        except LineTooLong as exc:
            raise too_long(line + carried.count(NEWLINE) + exc.lines_before, exc.carriage_returns) from None
        if piece is None:
            break
        block, carried = (carried + piece if carried else piece), b""
        if not block:
            continue
        cut = open_record(block)
        if cut is None:
            yield RowBlock(block, line, offset=offset)
            line += newlines(block)
            offset += len(block)
            continue
        if cut:  # the complete rows now, the unfinished record once the next block says how it goes on
            yield RowBlock(block[:cut], line, offset=offset)
            line += block.count(NEWLINE, 0, cut)
            offset += cut
        carried = block[cut:]
        if len(carried) > max(MAX_RECORD_BYTES, block_bytes):
            yield RowBlock(carried, line, unbalanced=True, overlong=True, offset=offset)
            return
    if carried:
        yield RowBlock(carried, line, unbalanced=True, offset=offset)


def _newlines(block: bytes) -> int:
    return block.count(NEWLINE)


def row_starts_from(block: bytes, position: int) -> int:
    """The first row start at or after ``position`` in a block of whole rows (``len(block)`` if none is): the byte
    after a line feed outside quotes."""
    if position <= 0:
        return 0
    if b'"' not in block:
        found = block.find(b"\n", position - 1)
        return len(block) if found < 0 else found + 1
    a = np.frombuffer(block, dtype=np.uint8)
    q = np.flatnonzero(a == _QUOTE)
    openers = q[::2]
    before = a[np.maximum(openers - 1, 0)]
    if ((before == _COMMA) | (before == _LF) | (before == _QUOTE) | (openers == 0)).all():
        # The usual case (as in open_record_start): quotes pair up by parity, so a line feed after an even number
        # of quotes is outside them.
        found = block.find(b"\n", position - 1)
        while found >= 0:
            if not int(np.searchsorted(q, found)) % 2:
                return found + 1
            found = block.find(b"\n", found + 1)
        return len(block)
    newlines = np.flatnonzero(a[position - 1 :] == _LF) + (position - 1)
    runs = quote_states(block)
    run = np.searchsorted(runs.starts, newlines) - 1
    outside = newlines[(run < 0) | ~runs.inside[np.maximum(run, 0)]]
    return int(outside[0]) + 1 if len(outside) else len(block)


def by_window(block: RowBlock, window_bytes: int, base: int = 0) -> Iterator[RowBlock]:
    """A block of whole rows cut where rows start in a new window of ``window_bytes`` of the object (``base``: the
    object's offset of the block's ``offset`` 0), each piece with its offset in the object: every row of a piece
    starts in the window of the piece's offset. A block whose last record is unfinished is not cut (reading it
    names the problem)."""
    start = base + block.offset
    if block.unbalanced or (start + block.last_line_start) // window_bytes == start // window_bytes:
        yield RowBlock(block.data, block.first_line, block.unbalanced, block.overlong, start)
        return
    data, line, at = block.data, block.first_line, 0
    boundary = (start // window_bytes + 1) * window_bytes
    while at < len(data):
        cut = row_starts_from(data, boundary - start) if boundary - start < len(data) else len(data)
        if cut > at:
            yield RowBlock(data[at:cut], line, offset=start + at)
            line += data.count(NEWLINE, at, cut)
            at = cut
        boundary = ((start + at) // window_bytes + 1) * window_bytes
