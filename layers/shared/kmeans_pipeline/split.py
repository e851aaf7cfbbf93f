"""The data step's core: validate CSV bytes and split them into train and test channel bytes, in bounded memory.

The raw object arrives as byte chunks of any size (gzip is recognised by its magic number and unpacked on the
fly). They are regrouped into blocks of whole lines (``BLOCK_BYTES``), and each block is checked and split in
one of two ways:

- the fast path (numpy, a few vectorised passes over the block) takes every well-formed block: numeric feature
  columns beside any text columns (ids, dates, names), quoted fields with commas, doubled quotes or line breaks
  inside (found by quote parity), LF or CRLF endings. It checks the field count of every row, where every quote
  sits, and the syntax of every feature field (``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?``, short
  enough that it cannot overflow), and routes the rows to train or test without converting a single number:
  the channels carry the source's own text. Columns that are not features are skipped over, never copied.
- anything else (spaces around a number, a value that is not a number, a ragged row, a stray quote, a bare CR,
  bytes that are not UTF-8) goes through the exact path, row by row with the ``csv`` module. It either accepts
  the block (writing each value as Python's ``repr`` of the float) or raises a DataValidationError naming the
  line and the column.

Both paths give rows the same fate: the train/test assignment is decided per block by
:class:`StratifiedSplitter`, from the row count (and strata) only, in block order. Blocks are scanned on a small
thread pool while the next ones are read and the finished ones written (see :func:`split_stream`); peak memory
is a constant multiple of ``BLOCK_BYTES``, whatever the input's size.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kmeans_pipeline.channels import parse_rows
from kmeans_pipeline.errors import DataValidationError

BLOCK_BYTES = 1 << 19  # fastest with two workers on this 2-core machine (1 MiB: 20% slower, 30% more memory)
MAX_LINE_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
NEWLINE = b"\n"
# A fast-path field longer than this goes to the exact path, which checks that its value is finite: a number of
# at most 100 characters with an exponent of at most two digits stays below 1e200, far from float64's 1.8e308.
_MAX_FAST_FIELD = 100
_MAX_STRATUM_BYTES = 16


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class SplitResult:
    feature_columns: list[str]
    train_rows: int
    test_rows: int
    blank_lines: int


class StratifiedSplitter:
    """Seeded train/test assignment that keeps each stratum's test share within one row of the target.

    Rows come in batches. In each batch every stratum sends to test exactly the rows it owes,
    round(fraction x rows seen so far) minus the rows already sent, chosen at random among the batch's rows.
    So each stratum (or the whole file, unstratified) holds round(fraction x rows) test rows after every batch,
    in random places, and the result depends only on the seed and the sequence of batches.
    """

    def __init__(self, test_fraction: float, seed: int) -> None:
        self._fraction = test_fraction
        self._rng = np.random.default_rng(seed)
        self._seen: dict[bytes, int] = {}
        self._tested: dict[bytes, int] = {}

    def _owed(self, stratum: bytes, rows: int) -> int:
        seen = self._seen.get(stratum, 0) + rows
        tested = self._tested.get(stratum, 0)
        owed = min(max(math.floor(self._fraction * seen + 0.5) - tested, 0), rows)
        self._seen[stratum], self._tested[stratum] = seen, tested + owed
        return owed

    def assign(self, rows: int, strata: np.ndarray | None = None) -> np.ndarray:
        """A boolean mask over the batch's rows: True for test."""
        is_test = np.zeros(rows, dtype=bool)
        if rows == 0:
            return is_test
        if strata is None:
            is_test[self._rng.choice(rows, self._owed(b"", rows), replace=False)] = True
            return is_test
        values, inverse = np.unique(strata, return_inverse=True)
        for number, value in enumerate(values):
            members = np.flatnonzero(inverse == number)
            owed = self._owed(bytes(value), len(members))
            is_test[members[self._rng.choice(len(members), owed, replace=False)]] = True
        return is_test


# ------------------------------------------------------------------------------------------------------------
# Bytes in, blocks of whole lines out
# ------------------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------------------
# The header
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    header: list[str]
    features: list[int]  # indexes of the feature columns, in channel order
    stratify: int | None
    nonnegative: tuple[int, ...] = ()  # feature columns whose values must not be negative (log treatments)

    @property
    def width(self) -> int:
        return len(self.header)

    @property
    def names(self) -> list[str]:
        return [self.header[i] for i in self.features]


def parse_header(
    raw: bytes,
    feature_columns: list[str] | None,
    stratify_column: str | None,
    nonnegative_columns: list[str] | None = None,
) -> Layout:
    try:
        line = raw.decode("utf-8").removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"line 1: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not line.strip():
        raise DataValidationError("line 1: the header is blank")
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
    wanted = feature_columns or header
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataValidationError(f"line 1: feature column(s) {', '.join(missing)} not in the header {header}")
    stratify = None
    if stratify_column is not None:
        if stratify_column not in header:
            raise DataValidationError(f"line 1: stratify column {stratify_column} not in the header {header}")
        stratify = header.index(stratify_column)
    nonnegative = tuple(header.index(name) for name in nonnegative_columns or [] if name in wanted)
    return Layout(header, [header.index(name) for name in wanted], stratify, nonnegative)


# ------------------------------------------------------------------------------------------------------------
# The fast path
# ------------------------------------------------------------------------------------------------------------

_DIGIT, _DOT, _SIGN, _EXP, _COMMA, _NL, _CR, _OTHER = range(8)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = _DIGIT
_CLASS[ord(".")] = _DOT
_CLASS[[ord("+"), ord("-")]] = _SIGN
_CLASS[[ord("e"), ord("E")]] = _EXP
_CLASS[ord(",")] = _COMMA
_CLASS[ord("\n")] = _NL
_CLASS[ord("\r")] = _CR


@dataclass
class _Block:
    rows: int
    test_rows: int
    blank: int
    lines: int
    train: bytes
    test: bytes


_PAD = 2  # class codes carry two newlines on each side, so neighbours of any position can be read unchecked


def _classes(a: np.ndarray) -> np.ndarray:
    c = np.empty(len(a) + 2 * _PAD, dtype=np.uint8)
    c[:_PAD] = c[-_PAD:] = _NL
    np.take(_CLASS, a, out=c[_PAD:-_PAD])
    return c


def _numbers_ok(c: np.ndarray, delimiters: np.ndarray) -> bool:
    """Whether every field is a plain number of the fast path's kind, judged at its dots, signs and exponents.

    ``c`` is padded (see _PAD); ``delimiters`` are the positions (in the unpadded block) of its commas and newlines.
    Digits may sit anywhere a mark allows them; empty fields were ruled out before.
    """
    inner = c[_PAD:-_PAD]
    marks = np.flatnonzero((inner - np.uint8(1)) < 3)  # DOT, SIGN, EXP (the uint8 subtraction wraps DIGIT to 255)
    if not len(marks):
        return True
    kind = inner[marks]
    at = marks + _PAD
    prev2, prev, nxt, nxt2 = c[at - 2], c[at - 1], c[at + 1], c[at + 2]
    field_start = prev >= _COMMA
    dot, sign, exp = kind == _DOT, kind == _SIGN, kind == _EXP
    # A dot: after a digit, a sign or the field's start; not before a dot or a sign; next to a digit.
    dot_ok = (
        ((prev == _DIGIT) | (prev == _SIGN) | field_start)
        & (nxt != _DOT)
        & (nxt != _SIGN)
        & ((prev == _DIGIT) | (nxt == _DIGIT))
    )
    # A sign: at the field's start before a digit (or a dot and a digit), or right after an exponent before a digit.
    sign_ok = (field_start & ((nxt == _DIGIT) | ((nxt == _DOT) & (nxt2 == _DIGIT)))) | (
        (prev == _EXP) & (nxt == _DIGIT)
    )
    # An exponent: after a mantissa digit (perhaps then a dot), before a digit or a sign and a digit.
    exp_ok = ((prev == _DIGIT) | ((prev == _DOT) & (prev2 == _DIGIT))) & (
        (nxt == _DIGIT) | ((nxt == _SIGN) & (nxt2 == _DIGIT))
    )
    if not np.where(dot, dot_ok, np.where(sign, sign_ok, exp_ok)).all():
        return False
    # At most one dot and one exponent per field, no dot after the exponent, exponents of at most two digits.
    # The field each mark is in: a running count of delimiters where they are dense, a search where they are few.
    field_of: np.ndarray
    if len(marks) * 64 > len(inner):
        field_of = np.cumsum(inner >= _COMMA, dtype=np.int32)[marks]
    else:
        field_of = np.searchsorted(delimiters, marks)
    for which in (dot, exp):
        fields = field_of[which]
        if (fields[1:] == fields[:-1]).any():
            return False
    e_at = marks[exp]
    if len(e_at):
        e_field, d_at, d_field = field_of[exp], marks[dot], field_of[dot]
        following = np.searchsorted(d_at, e_at)
        has_next = following < len(d_at)
        if (d_field[following[has_next]] == e_field[has_next]).any():
            return False
        first_digit = e_at + _PAD + 1 + (c[e_at + _PAD + 1] == _SIGN)
        if ((c[first_digit + 1] == _DIGIT) & (c[np.minimum(first_digit + 2, len(c) - 1)] == _DIGIT)).any():
            return False
    return True


# Bytes that matter to the structure of a CSV line; everything else is field content.
_ORDINARY, _K_COMMA, _K_NL, _K_QUOTE, _K_CR, _K_NUL = range(6)
_KIND = np.zeros(256, dtype=np.uint8)
_KIND[ord(",")], _KIND[ord("\n")], _KIND[ord('"')], _KIND[ord("\r")], _KIND[0] = (
    _K_COMMA,
    _K_NL,
    _K_QUOTE,
    _K_CR,
    _K_NUL,
)


_NUMERIC_BYTES = b"0123456789.+-eE,\r\n"


@dataclass
class _Scan:
    """A block checked by the fast path: its feature rows (one per line, source text) before the split."""

    rows: int
    blank: int
    lines: int
    out: np.ndarray  # uint8: the non-blank rows' feature fields, comma-joined, one row per line
    row_lengths: np.ndarray  # bytes of each row in ``out``, its newline included
    strata: np.ndarray | None


def _scan_numbers(a: np.ndarray, layout: Layout) -> _Scan | None:
    """The quickest case: every field of every row a plain number (LF or CRLF); None if the block is not so."""
    c = _classes(a)
    inner = c[_PAD:-_PAD]
    top = int(inner.max())
    if top == _OTHER:
        return None
    if top == _CR:  # CRLF: every CR must end a line; then they go
        cr = np.flatnonzero(inner == _CR)
        if (c[cr + _PAD + 1] != _NL).any():
            return None
        a = a[inner != _CR]
        c = _classes(a)
        inner = c[_PAD:-_PAD]
    is_delim = inner >= _COMMA
    delims = np.flatnonzero(is_delim)
    is_nl = inner[delims] == _NL
    nl = delims[is_nl]
    lines = len(nl)
    starts = np.empty(lines, dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    lengths = nl - starts
    blank = lengths == 0
    rows = lines - int(np.count_nonzero(blank))
    per_line = np.diff(np.flatnonzero(is_nl), prepend=-1)
    if (per_line[~blank] != layout.width).any():
        return None
    if not rows:
        return _Scan(0, lines, lines, a[:0], np.empty(0, np.int64), None)
    if rows < lines:
        keep = np.ones(len(delims), dtype=bool)
        keep[np.flatnonzero(is_nl)[blank]] = False
        ends = delims[keep].reshape(rows, layout.width)
    else:
        ends = delims.reshape(rows, layout.width)
    field_starts = np.empty_like(ends)
    field_starts[:, 0] = starts[~blank] if rows < lines else starts
    field_starts[:, 1:] = ends[:, :-1] + 1
    field_lengths = ends - field_starts
    if field_lengths.min() == 0 or field_lengths.max() > _MAX_FAST_FIELD:
        return None
    if not _numbers_ok(c, delims):
        return None
    if layout.nonnegative and (a[field_starts[:, list(layout.nonnegative)]] == ord("-")).any():
        return None  # a negative value where none may be: the exact path names it
    strata = None
    if layout.stratify is not None:
        strata = _stratum_keys(a, field_starts[:, layout.stratify], field_lengths[:, layout.stratify])
        if strata is None:
            return None
    if rows == lines and layout.features == list(range(layout.width)):
        return _Scan(rows, 0, lines, a, lengths + 1, strata)  # the channel rows are the source lines
    chosen = field_lengths[:, layout.features]
    out = _gather(a, field_starts[:, layout.features], chosen)
    return _Scan(rows, lines - rows, lines, out, chosen.sum(1) + len(layout.features), strata)


def _scan(block: bytes, layout: Layout) -> _Scan | None:
    """Check a block of whole lines with a few vectorised passes; None sends it to the exact path.

    Any well-formed CSV is taken: text in columns that are not features, quoted fields (with commas, doubled
    quotes and line breaks inside), CRLF endings. Quotes are paired by parity: a byte is inside a quoted field
    when an odd number of quotes precede it, so only commas and line feeds after an even number delimit fields.
    Every quote must sit where a strict CSV reader allows one (opening a field, closing it, or doubled inside
    it); the feature fields, their quotes taken off, must be plain numbers. Anything else (spaces around a
    number, a bare CR, a NUL, text that is not UTF-8, a stratum the exact path would strip) is the exact path's.
    """
    a = np.frombuffer(block, dtype=np.uint8)
    n = len(a)
    if not n:
        return _Scan(0, 0, 0, a, np.empty(0, np.int64), None)
    first_line = block[: block.find(b"\n") + 1]
    if not first_line.translate(None, _NUMERIC_BYTES):  # worth trying the quickest case
        quick = _scan_numbers(a, layout)
        if quick is not None:
            return quick
    if int(a.max()) >= 0x80:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    # Every structural byte sorts below "-" (so do a few others: spaces, "!", "#"...): one comparison finds them.
    candidates = np.flatnonzero(a <= ord(","))
    kinds = np.take(_KIND, a[candidates])
    if (kinds == _K_NUL).any():
        return None
    lines = int(np.count_nonzero(kinds == _K_NL))
    is_quote = kinds == _K_QUOTE
    quoted = bool(is_quote.any())
    delimiter = (kinds == _K_COMMA) | (kinds == _K_NL)
    is_cr = kinds == _K_CR
    if quoted:
        q = candidates[is_quote]
        if len(q) % 2:
            return None  # a quoted field runs on past the block
        # The j-th quote has j quotes before it: an even j opens a field (or is the second of a doubled quote),
        # an odd j closes it (or is the first of a doubled quote).
        odd = (np.arange(len(q)) & 1).astype(bool)
        prev = np.where(q > 0, a[np.maximum(q - 1, 0)], ord("\n"))
        nxt = a[np.minimum(q + 1, n - 1)]
        opening_ok = (prev == ord(",")) | (prev == ord("\n")) | (prev == ord('"'))
        closing_ok = (nxt == ord(",")) | (nxt == ord("\n")) | (nxt == ord("\r")) | (nxt == ord('"'))
        if not np.where(odd, closing_ok, opening_ok).all():
            return None
        outside = np.bitwise_xor.accumulate(is_quote.view(np.uint8)) == 0  # an even number of quotes so far
        delimiter &= outside
        is_cr &= outside
    if is_cr.any():
        cr = candidates[is_cr]
        if (a[np.minimum(cr + 1, n - 1)] != ord("\n")).any() or cr[-1] == n - 1:
            return None  # a CR that does not end a line
    delims = candidates[delimiter]
    is_nl = a[delims] == ord("\n")
    nl_index = np.flatnonzero(is_nl)
    nl = delims[nl_index]
    if not len(nl) or nl[-1] != n - 1:
        return None
    starts = np.empty(len(nl), dtype=np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    line_ends = nl - (a[np.maximum(nl - 1, 0)] == ord("\r")) * (nl > starts)  # before a CRLF's CR
    blank = line_ends == starts
    rows = len(nl) - int(np.count_nonzero(blank))
    # Fields per line: every non-blank line has width delimiters (its commas and its newline), a blank line one.
    per_line = np.diff(nl_index, prepend=-1)
    if (per_line[~blank] != layout.width).any():
        return None  # a ragged row: the exact path names it
    if not rows:
        return _Scan(0, len(nl), lines, a[:0], np.empty(0, np.int64), None)
    identity = (
        not quoted and rows == len(nl) and layout.features == list(range(layout.width)) and not (line_ends != nl).any()
    )
    if rows < len(nl):
        keep = np.ones(len(delims), dtype=bool)
        keep[nl_index[blank]] = False
        ends = delims[keep].reshape(rows, layout.width)
        ends[:, -1] = line_ends[~blank]
        row_starts = starts[~blank]
    else:
        ends = delims.reshape(rows, layout.width)
        if (line_ends != nl).any():
            ends = ends.copy()
            ends[:, -1] = line_ends
        row_starts = starts

    def bounds(columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """First byte and length of the given columns' fields, quotes taken off."""
        cols = np.asarray(columns)
        end = ends[:, cols]
        first = np.where(cols == 0, row_starts[:, None], ends[:, np.maximum(cols - 1, 0)] + 1)
        if quoted:
            wrapped = (a[np.minimum(first, n - 1)] == ord('"')) & (end > first)
            first, end = first + wrapped, end - wrapped
        return first, end - first

    field_starts, field_lengths = bounds(layout.features)
    if field_lengths.min() == 0 or field_lengths.max() > _MAX_FAST_FIELD:
        return None  # an empty field, or one long enough to need the exact check for overflow

    if identity:
        out, row_lengths = a, nl - starts + 1
    else:
        out = _gather(a, field_starts, field_lengths)
        row_lengths = field_lengths.sum(1) + len(layout.features)
    c = _classes(out)
    inner = c[_PAD:-_PAD]
    if int(inner.max()) > _NL:
        return None  # a byte no plain number has (a quote, a space, a letter)
    delimiters = np.flatnonzero(inner >= _COMMA)
    if len(delimiters) != rows * len(layout.features):
        return None  # a quoted feature field holding a comma or a line break: no number
    if not _numbers_ok(c, delimiters):
        return None
    if layout.nonnegative:
        signed = [layout.features.index(i) for i in layout.nonnegative]
        if (a[field_starts[:, signed]] == ord("-")).any():
            return None  # a negative value where none may be: the exact path names it

    strata = None
    if layout.stratify is not None:
        s_start, s_length = bounds([layout.stratify])
        strata = _stratum_keys(a, s_start[:, 0], s_length[:, 0])
        if strata is None:
            return None
    return _Scan(rows, len(nl) - rows, lines, out, row_lengths, strata)


def _route(scan: _Scan, is_test: np.ndarray) -> _Block:
    """The scanned rows sent to train or test by the splitter's mask."""
    tested = int(np.count_nonzero(is_test))
    if not tested:
        return _Block(scan.rows, 0, scan.blank, scan.lines, scan.out.tobytes(), b"")
    per_byte = np.repeat(is_test, scan.row_lengths)
    return _Block(
        scan.rows, tested, scan.blank, scan.lines, scan.out[~per_byte].tobytes(), scan.out[per_byte].tobytes()
    )


def _fast(block: bytes, layout: Layout, splitter: StratifiedSplitter) -> _Block | None:
    """Split a well-formed block on the fast path; None sends the block to the exact path."""
    scan = _scan(block, layout)
    if scan is None:
        return None
    return _route(scan, splitter.assign(scan.rows, scan.strata))


def _stratum_keys(a: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray | None:
    """Each row's stratum field as fixed-width bytes (None if one is too long to compare that way)."""
    if length.max() > _MAX_STRATUM_BYTES:
        return None
    offsets = np.arange(_MAX_STRATUM_BYTES)
    index = np.minimum(start[:, None] + offsets, len(a) - 1)
    keys = np.where(offsets < length[:, None], a[index], 0).astype(np.uint8)
    filled = length > 0
    # The exact path strips whitespace (any byte up to a space, or a non-ASCII space) and undoubles quotes.
    edges = np.concatenate([a[start[filled]], a[start[filled] + length[filled] - 1]])
    if ((edges <= 0x20) | (edges >= 0x80)).any() or (keys == ord('"')).any():
        return None
    return np.ascontiguousarray(keys).view(f"S{_MAX_STRATUM_BYTES}").ravel()


def _gather(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows made of the given fields (rows x columns matrices of starts and lengths), comma-joined, one per line."""
    if starts.size == 0:
        return a[:0]
    columns = starts.shape[1]
    starts, lengths = starts.ravel(), lengths.ravel()
    # Each field is copied with one byte more, the slot for its separator, which is then set.
    spans = lengths + 1
    out_ends = np.cumsum(spans)
    index = np.repeat(starts - (out_ends - spans), spans) + np.arange(int(out_ends[-1]))
    out = a[index]
    separators = out_ends - 1
    out[separators] = ord(",")
    out[separators[columns - 1 :: columns]] = ord("\n")
    return out


# ------------------------------------------------------------------------------------------------------------
# The exact path
# ------------------------------------------------------------------------------------------------------------

# What SageMaker's CSV reader and every spreadsheet agree is a number (float() also takes "1_000" and "１").
# A line may hold up to MAX_LINE_BYTES, so may a field (the csv module's default stops at 128 KiB).
csv.field_size_limit(MAX_LINE_BYTES + 1)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE = {"nan", "inf", "infinity"}


def parse_float(text: str, line_number: int, column: str) -> float:
    token = text.strip()
    if token.lower().lstrip("+-") in _NOT_FINITE:
        raise DataValidationError(f"line {line_number}, column {column}: {token!r} is not a finite number")
    if not _NUMBER.fullmatch(token):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is not a number")
    value = float(token)
    if not math.isfinite(value):
        raise DataValidationError(f"line {line_number}, column {column}: {token[:40]!r} is too large for a number")
    return value


def _exact(block: bytes, first_line: int, layout: Layout, splitter: StratifiedSplitter) -> _Block:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        line = first_line + block.count(b"\n", 0, exc.start)
        raise DataValidationError(
            f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start - line_start})"
        ) from exc
    lines = text.count("\n")
    # The csv module sees the line endings, so a quoted field keeps its newline (and is then no number), and
    # strict mode refuses text after a closing quote ("1"2) instead of gluing it on.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[str] = []
    strata: list[bytes] = []
    blank = 0
    try:
        for row in reader:
            line_number = first_line + reader.line_num - 1  # a quoted field may span lines: the row's last line
            if not row or all(not field.strip() for field in row):
                blank += 1
                continue
            if len(row) != layout.width:
                raise DataValidationError(f"line {line_number}: {len(row)} fields, but the header has {layout.width}")
            values = [parse_float(row[i], line_number, layout.header[i]) for i in layout.features]
            for i in layout.nonnegative:
                if parse_float(row[i], line_number, layout.header[i]) < 0:
                    raise DataValidationError(
                        f"line {line_number}, column {layout.header[i]}: {row[i].strip()[:40]!r} is negative, and "
                        "a log treatment needs values >= 0 (treat the column as numeric)"
                    )
            out.append(",".join(map(repr, values)) + "\n")
            if layout.stratify is not None:
                strata.append(row[layout.stratify].strip().encode())
    except csv.Error as exc:
        raise DataValidationError(f"line {first_line + reader.line_num - 1}: {exc}") from exc
    keys = np.array(strata, dtype=bytes) if layout.stratify is not None and out else None
    is_test = splitter.assign(len(out), keys).tolist()
    train = "".join(row for row, test in zip(out, is_test) if not test)
    test = "".join(row for row, test in zip(out, is_test) if test)
    return _Block(len(out), sum(is_test), blank, lines, train.encode(), test.encode())


# ------------------------------------------------------------------------------------------------------------
# The whole stream
# ------------------------------------------------------------------------------------------------------------


class _Now:
    """A result computed in the calling thread, with a future's ``result``."""

    def __init__(self, value: object) -> None:
        self._value = value

    def result(self) -> object:
        return self._value


def default_workers() -> int:
    """The cores this process may use (a 3 GB Lambda has two), at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def split_stream(
    chunks: Iterable[bytes],
    train: BinaryWriter,
    test: BinaryWriter,
    *,
    feature_columns: list[str] | None = None,
    stratify_column: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    k: int = 1,
    block_bytes: int = BLOCK_BYTES,
    on_train: Callable[[bytes], None] | None = None,
    workers: int | None = None,
    nonnegative_columns: list[str] | None = None,
) -> SplitResult:
    """Validate every row of a CSV object and write its feature rows, header-less, to train or test.

    ``on_train`` sees every piece of the training channel as it is written, in order (the data step uses it to
    compute the training set's statistics in the same pass).

    With more than one worker (the default: one per core, see default_workers) blocks are scanned and routed on
    a thread pool (numpy releases the GIL) while this thread reads the next ones, and a writer thread writes
    the finished ones in order: reading, parsing and writing overlap. At most ``workers + 1`` blocks are in
    each stage, so memory stays a constant multiple of ``block_bytes``. The result does not depend on the
    number of workers: the splitter draws for every block in order, in this thread.
    """
    workers = default_workers() if workers is None else max(1, workers)
    blocks = line_blocks(decompressed(chunks), block_bytes)
    line, carried = 1, b""  # the number of the first line not yet read into a block, and a block read on from
    try:
        block = next(blocks, None)
    except LineTooLong as exc:
        raise DataValidationError(
            f"line {line + exc.lines_before} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line"
        ) from None
    if block is None:
        raise DataValidationError("the object is empty: expected a header line and data rows")
    header_end = block.index(b"\n") + 1
    layout = parse_header(block[:header_end], feature_columns, stratify_column, nonnegative_columns)
    splitter = StratifiedSplitter(test_fraction, seed)
    counts = {"train": 0, "test": 0, "blank": 0}
    line = 2
    depth = workers + 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="split") if workers > 1 else None
    writer = ThreadPoolExecutor(1, thread_name_prefix="split-write") if workers > 1 else None
    scans: deque[tuple[Any, bytes, int]] = deque()  # (future _Scan or None, the block, its first line)
    routes: deque[Any] = deque()  # future _Block, in block order
    writes: deque[Any] = deque()

    def submit(executor: ThreadPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Any:
        return executor.submit(fn, *args) if executor is not None else _Now(fn(*args))

    def write(part: _Block) -> None:
        if part.train:
            train.write(part.train)
            if on_train is not None:
                on_train(part.train)
        if part.test:
            test.write(part.test)

    def emit(part: _Block) -> None:
        counts["train"] += part.rows - part.test_rows
        counts["test"] += part.test_rows
        counts["blank"] += part.blank
        writes.append(submit(writer, write, part))
        while len(writes) > 2:
            writes.popleft().result()

    def next_scan() -> None:  # the oldest block scanned: the splitter draws for it, in order
        future, block, first = scans.popleft()
        scan = future.result()
        if scan is None:
            routes.append(_Now(_exact(block, first, layout, splitter)))
        else:
            routes.append(submit(pool, _route, scan, splitter.assign(scan.rows, scan.strata)))

    source = itertools.chain([block[header_end:]], blocks)
    reader_error: LineTooLong | DataValidationError | None = None
    try:
        while True:
            try:
                block = next(source, None)
            except (LineTooLong, DataValidationError) as exc:
                reader_error = exc  # raised once the blocks before it are checked: the first bad line wins
                break
            if block is None:
                break
            block, carried = carried + block, b""
            if not block:
                continue
            if block.count(b'"') % 2 and len(block) < 4 * max(block_bytes, MAX_LINE_BYTES):
                carried = block  # a quoted field may go on in the next block: read on before deciding
                continue
            scans.append((submit(pool, _scan, block, layout), block, line))
            line += block.count(NEWLINE)
            while len(scans) > depth:
                next_scan()
            while len(routes) > depth:
                emit(routes.popleft().result())
        while scans:
            next_scan()
        while routes:
            emit(routes.popleft().result())
        if isinstance(reader_error, DataValidationError):
            raise reader_error
        if reader_error is not None:
            where = line + carried.count(NEWLINE) + reader_error.lines_before
            raise DataValidationError(
                f"line {where} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line"
            ) from None
        if carried:
            emit(_exact(carried, line, layout, splitter))
        while writes:
            writes.popleft().result()
    finally:
        for executor in (pool, writer):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
    train_rows, test_rows = counts["train"], counts["test"]
    if train_rows + test_rows == 0:
        raise DataValidationError("the object has a header but no data rows")
    if train_rows < k:
        raise DataValidationError(
            f"only {train_rows + test_rows} data rows: the training share ({train_rows}) must hold at least k={k} rows"
        )
    if test_rows == 0:
        raise DataValidationError(f"only {train_rows + test_rows} data rows: none left for the test channel")
    return SplitResult(layout.names, train_rows, test_rows, counts["blank"])


# ------------------------------------------------------------------------------------------------------------
# Reading the feature rows back (the demo scores every record the way the data step read it)
# ------------------------------------------------------------------------------------------------------------


def read_feature_rows(
    chunks: Iterable[bytes], feature_columns: list[str] | None = None, *, block_bytes: int = BLOCK_BYTES
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every data row of a CSV object, read by the data step's own rules (header, BOM, quoting, blank lines,
    columns by name): (feature names, float64 matrix of the feature columns, each row's 1-based line number).

    The same bytes give the same values, in source order, as the rows ``split_stream`` sends to its channels.
    """
    blocks = line_blocks(decompressed(chunks), block_bytes)
    line, carried = 1, b""
    try:
        block = next(blocks, None)
        if block is None:
            raise DataValidationError("the object is empty: expected a header line and data rows")
        header_end = block.index(b"\n") + 1
        layout = parse_header(block[:header_end], feature_columns, None)
        keep_all = StratifiedSplitter(0.0, 0)  # no test share: every row lands in "train", in source order
        line = 2
        values: list[np.ndarray] = []
        line_numbers: list[np.ndarray] = []

        def collect(part: _Block, source: bytes, first_line: int) -> None:
            nonlocal line
            values.append(parse_rows(part.train, len(layout.features)))
            if part.rows == part.lines:  # no blank line and no row over several lines: one row a line
                line_numbers.append(np.arange(first_line, first_line + part.lines, dtype=np.int64))
            else:
                line_numbers.append(_row_lines(source, first_line))
            line += part.lines

        for piece in itertools.chain([block[header_end:]], blocks):
            block, carried = carried + piece, b""
            if not block:
                continue
            part = _fast(block, layout, keep_all)
            if part is None:
                if block.count(b'"') % 2 and len(block) < 4 * max(block_bytes, MAX_LINE_BYTES):
                    carried = block  # a quoted field may go on in the next block, as in split_stream
                    continue
                part = _exact(block, line, layout, keep_all)
            collect(part, block, line)
    except LineTooLong as exc:
        where = line + carried.count(NEWLINE) + exc.lines_before
        raise DataValidationError(
            f"line {where} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line"
        ) from None
    if carried:
        collect(_exact(carried, line, layout, keep_all), carried, line)
    width = len(layout.features)
    matrix = np.concatenate(values) if values else np.empty((0, width))
    numbers = np.concatenate(line_numbers) if line_numbers else np.empty(0, dtype=np.int64)
    if len(numbers) != len(matrix):  # the two walks over the block disagree: a bug, never bad input
        raise AssertionError(f"{len(matrix)} rows but {len(numbers)} line numbers")
    return layout.names, matrix, numbers


def _row_lines(block: bytes, first_line: int) -> np.ndarray:
    """The line number of each data row of a block, counted as ``_exact`` counts them (a row's last line)."""
    reader = csv.reader(io.StringIO(block.decode("utf-8"), newline=""), strict=True)
    found = [first_line + reader.line_num - 1 for row in reader if row and any(field.strip() for field in row)]
    return np.array(found, dtype=np.int64)
