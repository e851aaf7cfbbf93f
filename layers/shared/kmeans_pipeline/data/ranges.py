"""The raw CSV cut into byte ranges that workers read on their own, and what ties their readings back into one.

A range is a span of an object's bytes; the worker that reads it moves both its ends to line starts (the byte
after the first line feed at or after the end's byte - 1; the object's first range starts after the header), so
neighbouring ranges meet exactly and no line is read twice (Hadoop's rule for text splits). Reading its lines
the data step's way (:mod:`~kmeans_pipeline.data.blocks`) a worker assumes its first line starts a row.

A line start can still fall inside a quoted field that holds a line break. A CSV lexer is a small automaton, and
at a line start it is in one of two states: outside quotes (a row starts there) or inside a quoted field. So each
worker also reports, for both states it could have started in, the state its range ends in and (for "inside")
where the first row starts (:class:`QuoteTracker`). Composing them from the object's start (outside) gives every
range's true starting state (:func:`resolve`): a range read under the wrong assumption is read again from its
first true row start, and the range before it, whose last record runs on past its end, reads that record to
its end (``overrun``). Nothing is accepted on an assumption that did not hold.

:func:`compose` is the one reduce both maps' summaries use (the data step's merge and batch scoring's summary): it
sends the ranges read under a wrong assumption to be read again, names the first real problem by its line in the
object, and returns the readings that hold and the ranges a record of the range before covers whole (whose first
reading's output must go).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from kmeans_pipeline.data.blocks import MAX_RECORD_BYTES, open_record_start, quote_states
from kmeans_pipeline.errors import DataValidationError

_LF = ord("\n")


def ends_of(piece: bytes, inside: bool) -> tuple[bool, int | None]:
    """Reading whole lines (``piece`` ends with a line feed) that start inside a quoted field or not: whether the
    state after them is inside one, and (starting inside) the offset of the first row start, if any."""
    if b'"' not in piece:
        return inside, (None if inside else 0)
    if not inside:
        return open_record_start(piece) is not None, 0
    # A field open at the start reads as if one more quote opened it: a run of n quotes inside a field toggles
    # the state as a run of n + 1 at a field's start does (both close it when n is odd).
    buffer = b'"' + piece
    runs = quote_states(buffer)
    a = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(a == _LF)
    run = np.searchsorted(runs.starts, newlines) - 1  # the prepended quote is run 0: every newline has a run
    outside = newlines[~runs.inside[run]]
    return bool(runs.inside[-1]), (int(outside[0]) if len(outside) else None)


class QuoteTracker:
    """Both readings of a range at once, piece by piece: started outside quotes and started inside a quoted field.

    ``inside`` / ``inside_if_inside``: the state after the pieces seen, under each start; ``record_if_inside``:
    where the first row starts under the second (an offset from the range's start; None while there is none).
    """

    def __init__(self) -> None:
        self.inside = False
        self.inside_if_inside = True
        self.record_if_inside: int | None = None
        self.offset = 0
        self.complete = True
        # The last piece read starting outside quotes under the first reading, and where its unfinished last
        # record starts (open_record_start): what cutting it into rows asks again when nothing is carried into it.
        self.last_open: tuple[bytes, int | None] | None = None

    def see(self, piece: bytes) -> None:
        if self.inside:
            self.last_open = None
            after, _ = ends_of(piece, True)
        else:
            self.last_open = (piece, open_record_start(piece))
            after = self.last_open[1] is not None
        if self.inside == self.inside_if_inside:  # once both readings are in one state, they read alike
            self.inside = self.inside_if_inside = after
        else:
            self.inside = after
            self.inside_if_inside, first = ends_of(piece, self.inside_if_inside)
            if self.record_if_inside is None and first is not None:
                self.record_if_inside = self.offset + first
        self.offset += len(piece)


@dataclass(frozen=True)
class Bounds:
    """Where a worker's range begins and ends once moved to line starts (absolute offsets in the object)."""

    start: int
    end: int


def aligned_pieces(
    chunks: Iterable[bytes],
    origin: int,
    start: int,
    end: int,
    bounds: list[Bounds],
    rest: list[bytes],
    begun_at: list[int] | None = None,
) -> Iterator[bytes]:
    """The bytes of the range ``[start, end)`` moved to line starts, as they come: ``chunks`` are the object's
    bytes from ``origin`` (``max(start - 1, 0)``) on. The aligned start is the byte after the first line feed at or
    after ``start - 1`` (for the object's first range, the header's); the aligned end likewise for ``end``, or the
    object's end. When the generator is exhausted, ``bounds`` holds the aligned range (empty, start == end, when
    no line starts in the range) and ``rest`` the bytes read after it; ``begun_at`` gets the aligned start as soon as
    it is known, before the first piece."""
    position, begun, cut = origin, -1, max(start - 1, 0)
    for chunk in chunks:
        low = position
        position += len(chunk)
        if begun < 0:
            at = chunk.find(b"\n", max(cut - low, 0))
            if at < 0:
                continue
            begun = low + at + 1
            if begun_at is not None:
                begun_at.append(begun)
            if begun >= end:
                bounds.append(Bounds(begun, begun))
                rest.append(chunk[at + 1 :])
                return
            chunk, low = chunk[at + 1 :], begun
        at = chunk.find(b"\n", max(end - 1 - low, 0))
        if at >= 0:
            yield chunk[: at + 1]
            bounds.append(Bounds(begun, low + at + 1))
            rest.append(chunk[at + 1 :])
            return
        if chunk:
            yield chunk
    bounds.append(Bounds(position, position) if begun < 0 else Bounds(begun, position))


def overrun(chunks: Iterable[bytes]) -> tuple[bytes, bool]:
    """The rest of a record whose quoted field is open at a range's end: the bytes after the end up to and
    including the line feed that ends it, and True; or, when the object ends first or the record runs on past
    MAX_RECORD_BYTES, what was read (reading it names the problem) and False."""
    taken = bytearray()
    inside, scanned = True, 0
    chunks = iter(chunks)
    while True:
        chunk = next(chunks, None)
        if chunk is None:  # the object's end ends the last line, as line_blocks has it
            if not taken or taken.endswith(b"\n"):
                return bytes(taken), False
            taken += b"\n"
        else:
            taken += chunk
        last = taken.rfind(b"\n") + 1
        if last > scanned:
            inside, first = ends_of(bytes(taken[scanned:last]), inside)
            if first is not None:
                return bytes(taken[: scanned + first]), True
            scanned = last
        if chunk is None:
            return bytes(taken), False
        if len(taken) > MAX_RECORD_BYTES:
            return bytes(taken), False


_LINE = re.compile(r"^line (\d+)")


def shift_line(message: str, lines_before: int) -> str:
    """A worker's message about its own line n, about line n + ``lines_before`` of the object."""
    return _LINE.sub(lambda m: f"line {int(m.group(1)) + lines_before}", message, count=1)


def line_of(message: str) -> int | None:
    found = _LINE.match(message)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Reading:
    """One range as a worker read it (first pass, or read again from its true first row)."""

    start: int  # where its rows start: its aligned start, or the first true row start when read again
    end: int  # where its rows end: its aligned end, or past it when its last record ran on (overrun)
    aligned_end: int
    ends_inside: bool  # under its assumption (rows start at ``start``)
    ends_inside_if_inside: bool
    record_if_inside: int | None  # absolute
    complete: bool  # its quote states were followed to its aligned end
    error: bool


def reading_of(result: Any) -> Reading:
    """The reading a worker's result (the data step's or batch scoring's) reports."""
    return Reading(
        start=result.start,
        end=result.end,
        aligned_end=result.aligned_end,
        ends_inside=result.ends_inside,
        ends_inside_if_inside=result.ends_inside_if_inside,
        record_if_inside=result.record_if_inside,
        complete=result.complete,
        error=result.error is not None,
    )


@dataclass(frozen=True)
class Piece:
    """A range's true share of the object: its rows start at ``start``; ``again`` when the first reading
    assumed wrong and the range must be read from ``start`` (None: nothing of it is left, a record of the range
    before covers it all)."""

    index: int
    start: int | None
    again: bool


def resolve(readings: list[Reading], again: dict[int, Reading]) -> tuple[list[Piece], int | None]:
    """Every range's true start, composed from the object's start (outside quotes), up to the first range whose
    reading holds a problem that is really there: (pieces, the index of that range or None). ``again``: the
    readings of ranges read again from their first true row start, by index; a piece with ``again`` set and no
    such reading yet must be read again before its rows count."""
    pieces: list[Piece] = []
    inside = False
    for index, reading in enumerate(readings):
        if not inside:
            pieces.append(Piece(index, reading.start, False))
            if reading.error or not reading.complete:
                return pieces, index
            inside = reading.ends_inside
            continue
        pieces.append(Piece(index, reading.record_if_inside, True))
        redone = again.get(index)
        if redone is not None:
            if redone.error or not redone.complete:
                return pieces, index
            inside = redone.ends_inside
        elif not reading.complete:  # where it ends is known once it is read again
            return pieces, index
        else:
            inside = reading.ends_inside_if_inside  # the range's true end, whatever its reading assumed
    return pieces, None


class RangesInconsistent(RuntimeError):
    """The workers' readings do not join up: a bug, never a data problem."""


class Outcome(Protocol):
    """What a worker's result (the data step's RangeResult, batch scoring's ScoreRangeResult) tells the reduce."""

    start: int
    end: int
    aligned_end: int
    ends_inside: bool
    ends_inside_if_inside: bool
    record_if_inside: int | None
    complete: bool
    error: str | None
    line_base: int
    lines: int


Item = TypeVar("Item", bound=BaseModel)
Result = TypeVar("Result", bound=Outcome)


@dataclass(frozen=True)
class Chosen(Generic[Item, Result]):
    """A range whose rows count: its item, the reading that holds, and the lines of its object before it."""

    item: Item
    result: Result
    lines_before: int


@dataclass
class Composed(Generic[Item, Result]):
    """The reduce's verdict on the readings: ranges to read again (their items with ``again_from`` set), or (when
    there are none) the readings that hold in file order; and the ranges nobody's rows are in (a record of the range
    before covers all of them), with their first reading, whose output is nobody's rows."""

    redo: list[Item] = field(default_factory=list)
    chosen: list[Chosen[Item, Result]] = field(default_factory=list)
    covered: list[tuple[Item, Result]] = field(default_factory=list)


def compose(
    items: Sequence[Item],
    firsts: Sequence[Result],
    agains: Mapping[int, Result],
    part: Callable[[Item], int] = lambda item: 0,
    where: Callable[[Item], str] = lambda item: "",
) -> Composed[Item, Result]:
    """Compose the workers' readings of ``items`` (in file order; ``firsts[i]`` and ``agains[i]`` are the first
    reading of ``items[i]`` and the one from its true first row, if any), object by object (``part``). Raises
    DataValidationError with the first real problem (``where(item)`` before it, then its line in the object), and
    RangesInconsistent if the readings that hold do not meet."""
    composed: Composed[Item, Result] = Composed()
    groups: dict[int, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(part(item), []).append(position)
    for positions in groups.values():
        readings = [reading_of(firsts[p]) for p in positions]
        again = {j: reading_of(agains[p]) for j, p in enumerate(positions) if p in agains}
        pieces, stop = resolve(readings, again)
        lines_before = 1
        for piece in pieces:
            position = positions[piece.index]
            item = items[position]
            if piece.again and piece.start is None:
                composed.covered.append((item, firsts[position]))
                continue
            if piece.again and piece.index not in again:
                composed.redo.append(item.model_copy(update={"again_from": piece.start}))
                continue
            result = agains[position] if piece.again else firsts[position]
            if result.error is not None and not composed.redo:
                shift = lines_before - (result.line_base - 1)
                raise DataValidationError(where(item) + shift_line(result.error, shift))
            composed.chosen.append(Chosen(item, result, lines_before))
            lines_before += result.lines
        if stop is not None:
            break  # nothing after a real problem, or a range whose end is known only once it is read again
    if not composed.redo:
        _check_joined(composed.chosen, part)
    return composed


def _check_joined(chosen: list[Chosen[Any, Any]], part: Callable[[Any], int]) -> None:
    for this, after in zip(chosen, chosen[1:]):
        if part(this.item) == part(after.item) and this.result.end != after.result.start:
            raise RangesInconsistent(
                f"a range ends at byte {this.result.end:,}, the next one's rows start at {after.result.start:,}"
            )
