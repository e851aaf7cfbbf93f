"""The data step's core: validate CSV bytes and split them into train and test channel bytes, in bounded memory.

The raw object arrives as byte chunks of any size (gzip is recognised by its magic number and unpacked on the
fly). They are regrouped into blocks of whole lines (``BLOCK_BYTES``), and each block is checked and split in
one of two ways:

- the fast path (numpy, a few vectorised passes over the block) takes blocks in which every field of every row
  is a plain number (``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?``), with LF or CRLF endings. It checks
  the syntax of every field, the field count of every row, and that no value can overflow, and routes the rows
  to train or test without converting a single number: the channels carry the source's own text.
- anything else (quoted fields, spaces, text in columns that are not features, a value that is not a number,
  bytes that are not ASCII) goes through the exact path, row by row with the ``csv`` module. It either accepts
  the block (writing each value as Python's ``repr`` of the float) or raises a DataValidationError naming the
  line and the column.

Both paths give rows the same fate: the train/test assignment is decided per block by
:class:`StratifiedSplitter`, from the row count (and strata) only. Peak memory is a small multiple of
``BLOCK_BYTES``, whatever the input's size.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kmeans_pipeline.errors import DataValidationError

BLOCK_BYTES = 1 << 20  # about the size of a core's L2 cache: the fastest block size measured (see make bench)
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


def parse_header(raw: bytes, feature_columns: list[str] | None, stratify_column: str | None,
                 nonnegative_columns: list[str] | None = None) -> Layout:
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


def _numbers_ok(c: np.ndarray, field_number: np.ndarray) -> bool:
    """Whether every field is a plain number of the fast path's kind, judged at its dots, signs and exponents.

    ``c`` is padded (see _PAD); ``field_number`` counts, for every byte of the block, the delimiters before it.
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
    dot_ok = (((prev == _DIGIT) | (prev == _SIGN) | field_start) & (nxt != _DOT) & (nxt != _SIGN)
              & ((prev == _DIGIT) | (nxt == _DIGIT)))
    # A sign: at the field's start before a digit (or a dot and a digit), or right after an exponent before a digit.
    sign_ok = ((field_start & ((nxt == _DIGIT) | ((nxt == _DOT) & (nxt2 == _DIGIT))))
               | ((prev == _EXP) & (nxt == _DIGIT)))
    # An exponent: after a mantissa digit (perhaps then a dot), before a digit or a sign and a digit.
    exp_ok = (((prev == _DIGIT) | ((prev == _DOT) & (prev2 == _DIGIT)))
              & ((nxt == _DIGIT) | ((nxt == _SIGN) & (nxt2 == _DIGIT))))
    if not np.where(dot, dot_ok, np.where(sign, sign_ok, exp_ok)).all():
        return False
    # At most one dot and one exponent per field, no dot after the exponent, exponents of at most two digits.
    field_of = field_number[marks]
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


def _fast(block: bytes, layout: Layout, splitter: StratifiedSplitter) -> _Block | None:
    """Split a block whose fields are all plain numbers; None sends the block to the exact path."""
    a = np.frombuffer(block, dtype=np.uint8)
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
    # Fields per line: every non-blank line has width delimiters (its commas and its newline), a blank line one.
    per_line = np.diff(np.flatnonzero(is_nl), prepend=-1)
    if (per_line[~blank] != layout.width).any():
        return None  # a ragged row: the exact path names it
    if not rows:
        return _Block(0, 0, lines, lines, b"", b"")
    # Field bounds of the non-blank rows: ends[r, j] is the delimiter after field j, field_starts its first byte.
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
        return None  # an empty field, or one long enough to need the exact check for overflow
    if not _numbers_ok(c, np.cumsum(is_delim, dtype=np.int32)):
        return None
    if layout.nonnegative and (a[field_starts[:, list(layout.nonnegative)]] == ord("-")).any():
        return None  # a negative value where none may be: the exact path names it

    strata = None
    if layout.stratify is not None:
        strata = _stratum_keys(a, field_starts[:, layout.stratify], field_lengths[:, layout.stratify])
        if strata is None:
            return None
    is_test = splitter.assign(rows, strata)
    tested = int(np.count_nonzero(is_test))

    if layout.features == list(range(layout.width)):
        # The channel row is the source line: route whole lines (blank lines go nowhere).
        route = np.full(lines, 2, dtype=np.uint8)
        route[~blank] = is_test
        per_byte = np.repeat(route, lengths + 1)
        return _Block(rows, tested, lines - rows, lines, a[per_byte == 0].tobytes(), a[per_byte == 1].tobytes())
    chosen_starts = field_starts[:, layout.features]
    chosen_lengths = field_lengths[:, layout.features]
    return _Block(
        rows,
        tested,
        lines - rows,
        lines,
        _gather(a, chosen_starts[~is_test], chosen_lengths[~is_test]),
        _gather(a, chosen_starts[is_test], chosen_lengths[is_test]),
    )


def _stratum_keys(a: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray | None:
    """Each row's stratum field as fixed-width bytes (None if one is too long to compare that way)."""
    if length.max() > _MAX_STRATUM_BYTES:
        return None
    offsets = np.arange(_MAX_STRATUM_BYTES)
    index = np.minimum(start[:, None] + offsets, len(a) - 1)
    keys = np.where(offsets < length[:, None], a[index], 0).astype(np.uint8)
    return np.ascontiguousarray(keys).view(f"S{_MAX_STRATUM_BYTES}").ravel()


def _gather(a: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bytes:
    """Rows made of the given fields (rows x columns matrices of starts and lengths), comma-joined, one per line."""
    if starts.size == 0:
        return b""
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
    return out.tobytes()


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
        raise DataValidationError(f"line {line}: not UTF-8 text ({exc.reason} at byte {exc.start - line_start})") from exc
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
    nonnegative_columns: list[str] | None = None,
) -> SplitResult:
    """Validate every row of a CSV object and write its feature rows, header-less, to train or test.

    ``on_train`` sees every piece of the training channel as it is written (the data step uses it to compute the
    training set's statistics in the same pass).
    """
    blocks = line_blocks(decompressed(chunks), block_bytes)
    line, carried = 1, b""  # the number of the first line not yet split, and a block read on from
    try:
        block = next(blocks, None)
        if block is None:
            raise DataValidationError("the object is empty: expected a header line and data rows")
        header_end = block.index(b"\n") + 1
        layout = parse_header(block[:header_end], feature_columns, stratify_column, nonnegative_columns)
        splitter = StratifiedSplitter(test_fraction, seed)
        train_rows = test_rows = blank = 0
        line, carried = 2, b""

        def emit(part: _Block) -> None:
            nonlocal train_rows, test_rows, blank, line
            if part.train:
                train.write(part.train)
                if on_train is not None:
                    on_train(part.train)
            if part.test:
                test.write(part.test)
            train_rows += part.rows - part.test_rows
            test_rows += part.test_rows
            blank += part.blank
            line += part.lines

        for block in itertools.chain([block[header_end:]], blocks):
            block, carried = carried + block, b""
            if not block:
                continue
            part = _fast(block, layout, splitter)
            if part is None:
                if block.count(b'"') % 2 and len(block) < 4 * max(block_bytes, MAX_LINE_BYTES):
                    carried = block  # a quoted field may go on in the next block: read on before deciding
                    continue
                part = _exact(block, line, layout, splitter)
            emit(part)
    except LineTooLong as exc:
        where = line + carried.count(NEWLINE) + exc.lines_before
        raise DataValidationError(
            f"line {where} is longer than {MAX_LINE_BYTES:,} bytes: expected one record per line"
        ) from None
    if carried:
        emit(_exact(carried, line, layout, splitter))
    if train_rows + test_rows == 0:
        raise DataValidationError("the object has a header but no data rows")
    if train_rows < k:
        raise DataValidationError(
            f"only {train_rows + test_rows} data rows: the training share ({train_rows}) must hold at least k={k} rows"
        )
    if test_rows == 0:
        raise DataValidationError(f"only {train_rows + test_rows} data rows: none left for the test channel")
    return SplitResult(layout.names, train_rows, test_rows, blank)


# ------------------------------------------------------------------------------------------------------------
# Standardisation
# ------------------------------------------------------------------------------------------------------------


def parse_rows(text: bytes, dim: int) -> np.ndarray:
    """Header-less channel rows (as written above: plain numbers, one row per line) as a float64 matrix."""
    body = text[:-1] if text.endswith(b"\n") else text
    if not body:
        return np.empty((0, dim))
    values = np.fromstring(body.replace(b"\n", b","), sep=",")
    if values.size % dim or values.size // dim != body.count(b"\n") + 1:
        raise DataValidationError(f"a channel block does not hold rows of {dim} numbers")
    return values.reshape(-1, dim)


class RunningStats:
    """Mean and population standard deviation of rows seen in pieces (Chan et al.'s pairwise update).

    Without ``dim``, the width is that of the first rows added.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.count = 0
        self.dim = dim
        self.mean = self.m2 = np.zeros(dim or 0)

    def add_text(self, text: bytes) -> None:
        if self.dim is None:
            self.dim = text[: text.index(b"\n")].count(b",") + 1
        self.add(parse_rows(text, self.dim))

    def add(self, rows: np.ndarray) -> None:
        n = len(rows)
        if not n:
            return
        if not self.count:
            self.dim = rows.shape[1]
            self.mean = self.m2 = np.zeros(self.dim)
        mean = rows.mean(0)
        m2 = ((rows - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation; a column constant up to rounding (std tiny against its mean) gets 0."""
        std = np.sqrt(self.m2 / max(self.count, 1))
        return np.where(std <= 1e-9 * np.maximum(np.abs(self.mean), 1.0), 0.0, std)


def standardized_text(text: bytes, mean: np.ndarray, std: np.ndarray) -> bytes:
    """Channel rows z-scored ((x - mean) / std, a zero std counting as 1), written with float32's 9 digits."""
    rows = parse_rows(text, len(mean))
    z = ((rows - mean) / np.where(std == 0, 1.0, std)).astype(np.float32)
    out = io.StringIO()
    np.savetxt(out, z, fmt="%.9g", delimiter=",")
    return out.getvalue().encode()


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

        for block in itertools.chain([block[header_end:]], blocks):
            block, carried = carried + block, b""
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
