"""One byte range of a raw CSV object in S3, read as a Distributed Map worker reads it: moved to line starts, whole
lines, both quote-state readings followed as it goes, and the record open at its end read on to its end
(:mod:`kmeans_pipeline.data.ranges` says why). The data step's split and batch scoring read their ranges this way,
so that the reduce after either map can compose the readings (:func:`kmeans_pipeline.data.ranges.resolve`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from kmeans_pipeline.aws.s3 import ranged_chunks
from kmeans_pipeline.data.blocks import (
    BLOCK_BYTES,
    LineTooLong,
    RowBlock,
    by_window,
    line_blocks,
    open_record_start,
    row_blocks,
)
from kmeans_pipeline.data.ranges import Bounds, QuoteTracker, aligned_pieces, overrun
from kmeans_pipeline.schemas.dataset import SourceObject

# Past its end a range reads on in small GETs (to the end of its last line, or of a record open there).
TAIL_BYTES = 64 << 10


class RangeReading:
    """A range's bytes ``[start, end)`` (from ``again_from``, a true row start, when read again) as whole lines,
    from its first row start to its aligned end, then (when a quoted field is open there) on to the end of that
    record; counting lines and following both quote readings as it goes."""

    def __init__(self, s3: Any, source: SourceObject, start: int, end: int, again_from: int | None = None) -> None:
        self.end = end
        self.start = again_from if again_from is not None else start
        self.origin = max(self.start - 1, 0)
        near = min(max(end, self.origin) + TAIL_BYTES, source.size)
        self._chunks = itertools.chain(
            ranged_chunks(s3, source, start=self.origin, stop=near),
            ranged_chunks(s3, source, start=near, range_bytes=TAIL_BYTES, in_flight=1),
        )
        self.bounds: list[Bounds] = []
        self.begun: list[int] = []  # where its first row starts, once known
        self.following: Iterator[bytes] | None = None  # its pieces, once read
        self._rest: list[bytes] = []
        self.tracker = QuoteTracker()
        self.lines = 0
        self._counted: tuple[bytes, int] | None = None  # the last piece and its line feeds
        self.overrun = 0
        self.draining = False

    def pieces(self, window_bytes: int | None = None) -> Iterator[bytes]:
        """Its whole lines, in blocks (within one window each, with ``window_bytes``, where no quoted field holds a
        line break), then the rest of a record open at its end."""
        body = aligned_pieces(self._chunks, self.origin, self.start, self.end, self.bounds, self._rest, self.begun)
        first = next(body, None)  # its aligned start is known from here on
        begun = self.begun[0] if self.begun else self.start
        lines = line_blocks(itertools.chain([first] if first else [], body), BLOCK_BYTES, window_bytes, begun)
        del first  # a chunk: held only until line_blocks has taken it in
        try:
            for piece in lines:
                self.tracker.see(piece)
                self._counted = (piece, piece.count(b"\n"))
                self.lines += self._counted[1]
                yield piece
        except LineTooLong:
            self.tracker.complete = False  # its quote states past here are unknown; the line is the problem
            raise
        if self.tracker.inside and not self.draining:  # the last record runs on past the range: read it to its end
            tail, _ = overrun(itertools.chain(self._rest, self._chunks))
            self.overrun = len(tail)
            self.lines += tail.count(b"\n")
            yield tail

    def blocks(self, window_bytes: int | None = None) -> Iterator[RowBlock]:
        """Its rows in blocks (lines numbered from 1, its first), each within one window of the object when
        ``window_bytes`` is given (offsets in the object; the data step gives a span of whole windows)."""
        self.following = self.pieces(window_bytes)
        blocks = row_blocks(
            self.following, BLOCK_BYTES, first_line=1, open_record=self._open_record, newlines=self._newlines
        )
        for block in blocks:
            if window_bytes is None:
                yield block
            else:
                yield from by_window(block, window_bytes, self.begun[0])

    def _open_record(self, block: bytes) -> int | None:
        """Where a block's unfinished last record starts: the tracker has just read it when it is the piece itself
        (nothing carried into it from the piece before)."""
        last = self.tracker.last_open
        if last is not None and last[0] is block:
            return last[1]
        return open_record_start(block)

    def _newlines(self, block: bytes) -> int:
        """A block's line feeds: counted as it was read when it is the piece itself."""
        counted = self._counted
        return counted[1] if counted is not None and counted[0] is block else block.count(b"\n")

    def drain(self) -> None:
        """After a problem: follow the quote states to the range's end all the same (the reduce needs them)."""
        if self.following is None:
            return
        self.draining = True
        try:
            for _ in self.following:
                pass
        except LineTooLong:
            pass

    @property
    def aligned(self) -> Bounds:
        return self.bounds[0] if self.bounds else Bounds(self.start, self.start)

    def result_fields(self) -> dict[str, Any]:
        """Where its rows start and end and both readings of its quote states, as RangeResult holds them."""
        aligned, tracker = self.aligned, self.tracker
        return {
            "start": aligned.start,
            "end": aligned.end + self.overrun,
            "aligned_end": aligned.end,
            "line_base": 1,
            "lines": self.lines,
            "ends_inside": tracker.inside,
            "ends_inside_if_inside": tracker.inside_if_inside,
            "record_if_inside": None if tracker.record_if_inside is None else aligned.start + tracker.record_if_inside,
            "complete": tracker.complete,
        }
