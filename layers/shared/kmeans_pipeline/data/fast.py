"""The fast path: a few vectorised numpy passes check a block of well-formed CSV and route its feature rows
to train or test without converting a single number (the channels carry the source's own text).

It takes numeric feature columns beside any text columns (ids, dates, names), quoted fields with commas, doubled
quotes or line breaks inside (found by quote parity), LF or CRLF endings. It checks the field count of every row,
where every quote sits, and the syntax of every feature field (``[+-]?(digits[.digits]|.digits)([eE][+-]?digits)?``),
and that its value is below 1e38 (inside float32's range, which SageMaker reads). Anything else returns None and
goes to :mod:`kmeans_pipeline.data.exact`, which accepts exactly what the strict ``csv`` reader and those rules do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmeans_pipeline.data.blocks import RoutedBlock
from kmeans_pipeline.data.header import Layout
from kmeans_pipeline.data.splitter import StratifiedSplitter

# A fast-path field longer than this goes to the exact path.
_MAX_FAST_FIELD = 100
# A number with at most this many digits before its point (its exponent added) is below 1e38, inside float32's
# range (3.4e38); a larger one goes to the exact path, which refuses it if it is beyond that range.
_MAX_MAGNITUDE = 38
_MAX_STRATUM_BYTES = 16

_DIGIT, _DOT, _SIGN, _EXP, _COMMA, _NL, _CR, _OTHER = range(8)
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = _DIGIT
_CLASS[ord(".")] = _DOT
_CLASS[[ord("+"), ord("-")]] = _SIGN
_CLASS[[ord("e"), ord("E")]] = _EXP
_CLASS[ord(",")] = _COMMA
_CLASS[ord("\n")] = _NL
_CLASS[ord("\r")] = _CR

_PAD = 2  # class codes carry two newlines on each side, so neighbours of any position can be read unchecked


def _classes(a: np.ndarray) -> np.ndarray:
    c = np.empty(len(a) + 2 * _PAD, dtype=np.uint8)
    c[:_PAD] = c[-_PAD:] = _NL
    np.take(_CLASS, a, out=c[_PAD:-_PAD])
    return c


def _numbers_ok(a: np.ndarray, c: np.ndarray, delimiters: np.ndarray, longest: int) -> bool:
    """Whether every field is a plain number of the fast path's kind, judged at its dots, signs and exponents, and
    below 1e38.

    ``a`` are the bytes, ``c`` their classes, padded (see _PAD); ``delimiters`` are the positions (in the unpadded
    block) of its commas and newlines; ``longest`` the length of its longest field. Digits may sit anywhere a mark
    allows them; empty fields were ruled out before.
    """
    inner = c[_PAD:-_PAD]
    marks = np.flatnonzero((inner - np.uint8(1)) < 3)  # DOT, SIGN, EXP (the uint8 subtraction wraps DIGIT to 255)
    if not len(marks):
        return longest <= _MAX_MAGNITUDE
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
    if longest <= _MAX_MAGNITUDE and not len(e_at):
        return True
    return _magnitudes_ok(a, c, delimiters, marks[~sign], e_at, field_of[exp])


def _magnitudes_ok(
    a: np.ndarray, c: np.ndarray, delimiters: np.ndarray, points: np.ndarray, e_at: np.ndarray, e_field: np.ndarray
) -> bool:
    """Whether every field's digits before its point (``points``: the positions of dots and exponents, in order),
    plus its exponent (at ``e_at``, in the fields ``e_field``), number at most _MAX_MAGNITUDE: its value is then
    below 1e38."""
    starts = np.empty(len(delimiters), dtype=np.int64)
    starts[0] = 0
    starts[1:] = delimiters[:-1] + 1
    following = np.searchsorted(points, starts)
    point = np.where(following < len(points), points[np.minimum(following, len(points) - 1)], delimiters)
    magnitude = np.minimum(point, delimiters) - starts - (c[starts + _PAD] == _SIGN)
    if len(e_at):
        digit = e_at + 1 + (c[e_at + _PAD + 1] == _SIGN)
        two = c[digit + _PAD + 1] == _DIGIT
        exponent = (a[digit].astype(np.int64) - ord("0")) * np.where(two, 10, 1) + np.where(
            two, a[np.minimum(digit + 1, len(a) - 1)].astype(np.int64) - ord("0"), 0
        )
        exponent = np.where(a[e_at + 1] == ord("-"), -exponent, exponent)
        np.add.at(magnitude, e_field, exponent)
    return bool(magnitude.max() <= _MAX_MAGNITUDE)


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
class Scan:
    """A block checked by the fast path: its feature rows (one per line, source text) before the split."""

    rows: int
    blank: int
    lines: int
    out: np.ndarray  # uint8: the non-blank rows' feature fields, comma-joined, one row per line
    row_lengths: np.ndarray  # bytes of each row in ``out``, its newline included
    strata: np.ndarray | None
    row_starts: np.ndarray | None = None  # where each row starts in the block (None when it has none)


def _scan_numbers(a: np.ndarray, layout: Layout) -> Scan | None:
    """The quickest case: every field of every row a plain number (LF or CRLF); None if the block is not so."""
    c = _classes(a)
    inner = c[_PAD:-_PAD]
    top = int(inner.max())
    if top == _OTHER:
        return None
    source = a
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
        return Scan(0, lines, lines, a[:0], np.empty(0, np.int64), None)
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
    longest = int(field_lengths.max())
    if field_lengths.min() == 0 or longest > _MAX_FAST_FIELD:
        return None
    if not _numbers_ok(a, c, delims, longest):
        return None
    if layout.nonnegative and (a[field_starts[:, list(layout.nonnegative)]] == ord("-")).any():
        return None  # a negative value where none may be: the exact path names it
    strata = None
    if layout.stratify is not None:
        strata = _stratum_keys(a, field_starts[:, layout.stratify], field_lengths[:, layout.stratify])
        if strata is None:
            return None
    if source is not a:  # the rows' starts in the block as it was, its CRs in
        starts[1:] = np.flatnonzero(source == ord("\n"))[:-1] + 1
    row_starts = starts[~blank] if rows < lines else starts
    if rows == lines and layout.features == list(range(layout.width)):
        return Scan(rows, 0, lines, a, lengths + 1, strata, row_starts)  # the channel rows are the source lines
    chosen = field_lengths[:, layout.features]
    out = _gather(a, field_starts[:, layout.features], chosen)
    return Scan(rows, lines - rows, lines, out, chosen.sum(1) + len(layout.features), strata, row_starts)


def scan(block: bytes, layout: Layout) -> Scan | None:
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
        return Scan(0, 0, 0, a, np.empty(0, np.int64), None)
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
        return Scan(0, len(nl), lines, a[:0], np.empty(0, np.int64), None)
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
    longest = int(field_lengths.max())
    if field_lengths.min() == 0 or longest > _MAX_FAST_FIELD:
        return None  # an empty field, or a long one: the exact path's

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
    if not _numbers_ok(out, c, delimiters, longest):
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
    return Scan(rows, len(nl) - rows, lines, out, row_lengths, strata, row_starts)


def route(scan: Scan, is_test: np.ndarray, keys: np.ndarray | None = None) -> RoutedBlock:
    """The scanned rows sent to train or test by the splitter's mask (``keys``: the training rows' sample keys)."""
    tested = int(np.count_nonzero(is_test))
    if not tested:
        return RoutedBlock(scan.rows, 0, scan.blank, scan.lines, scan.out.tobytes(), b"", keys)
    per_byte = np.repeat(is_test, scan.row_lengths)
    return RoutedBlock(
        scan.rows, tested, scan.blank, scan.lines, scan.out[~per_byte].tobytes(), scan.out[per_byte].tobytes(), keys
    )


def split_fast(block: bytes, layout: Layout, splitter: StratifiedSplitter) -> RoutedBlock | None:
    """Split a well-formed block on the fast path; None sends the block to the exact path."""
    scanned = scan(block, layout)
    if scanned is None:
        return None
    return route(scanned, splitter.assign(scanned.rows, scanned.strata))


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
