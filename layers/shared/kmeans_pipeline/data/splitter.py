"""The seeded train/test assignment: decided per batch of rows from the row count (and strata) only
(:class:`StratifiedSplitter`), and in the data step per window of the object's bytes (:class:`WindowSplitter`), so
that the dataset does not depend on how the object is cut into ranges."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from kmeans_pipeline.schemas.settings import WINDOW_BYTES


class StratifiedSplitter:
    """Seeded train/test assignment that keeps each stratum's test share within one row of the target.

    Rows come in batches. In each batch every stratum sends to test exactly the rows it owes,
    floor(fraction x rows seen so far + u) minus the rows already sent, chosen at random among the batch's rows,
    where u (drawn once per stratum, uniform in [0, 1)) rounds at random: so each stratum (or the whole file,
    unstratified) holds fraction x rows test rows within one row after every batch, in random places, and its
    expected share is exactly the fraction however few rows it has. That matters where many splitters each see a
    part of the file (the data step's ranges): a stratum with one row per range still sends a fifth of them to
    test at 0.2, where rounding to the nearest would send none. The result depends only on the seed and the
    sequence of batches.
    """

    def __init__(self, test_fraction: float, seed: int | list[int]) -> None:
        self._fraction = test_fraction
        self._rng = np.random.default_rng(seed)
        self._seen: dict[bytes, int] = {}
        self._tested: dict[bytes, int] = {}
        self._offset: dict[bytes, float] = {}

    def _owed(self, stratum: bytes, rows: int) -> int:
        seen = self._seen.get(stratum, 0) + rows
        tested = self._tested.get(stratum, 0)
        if stratum not in self._offset:
            self._offset[stratum] = float(self._rng.random())
        owed = min(max(math.floor(self._fraction * seen + self._offset[stratum]) - tested, 0), rows)
        self._seen[stratum], self._tested[stratum] = seen, tested + owed
        return owed

    def rows_for_both(self) -> int:
        """The fewest rows a stratum needs to send one to test and keep one for training."""
        rows = 1
        while math.floor(self._fraction * rows + 0.5) < 1 or rows - math.floor(self._fraction * rows + 0.5) < 1:
            rows += 1
        return rows

    def strata(self) -> dict[bytes, int]:
        """The rows seen of each stratum (b"" when unstratified)."""
        return dict(self._seen)

    def strata_sizes(self) -> list[int]:
        """The rows seen of each stratum (of the one stratum b"" when unstratified)."""
        return list(self._seen.values())

    def keys(self, rows: int) -> np.ndarray:
        """Uniform sample keys in [0, 1) for ``rows`` rows, the next draws of this splitter's generator."""
        return self._rng.random(rows)

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


class WindowSplitter:
    """The data step's train/test assignment, independent of how the object is cut into ranges.

    The rows that start in window ``w`` of part ``p`` (the bytes ``[w x window_bytes, (w + 1) x window_bytes)`` of
    the object, uncompressed) are assigned in one batch by a :class:`StratifiedSplitter` of their own, seeded by
    (seed, p, w): each stratum sends floor(fraction x its rows in the window + u) of them to test, u uniform in
    [0, 1) (so every stratum's share is exact within one row per window, and exact in expectation). The same
    generator then draws each training row's sample key (:class:`~kmeans_pipeline.data.treatment.TreatmentLearner`
    keeps the rows with the smallest keys). A range of the data step is a whole number of windows and reads the
    rows that start in it, so a row's fate depends only on the input, the seed and its window, never on the
    ranges, their number or the order they finish in.
    """

    def __init__(self, test_fraction: float, seed: int, part: int = 0, window_bytes: int = WINDOW_BYTES) -> None:
        self.fraction, self.seed, self.part, self.window_bytes = test_fraction, seed, part, window_bytes
        self._strata: Counter[bytes] = Counter()

    def window_of(self, offset: int) -> int:
        return offset // self.window_bytes

    def assign(
        self, window: int, rows: int, strata: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[bytes, int]]:
        """The window's rows, all of them: (the test mask, the training rows' sample keys in row order, its rows of
        each stratum). It changes nothing here, so windows may be drawn on several threads; ``count`` takes their
        strata in, in window order."""
        splitter = StratifiedSplitter(self.fraction, [self.seed, self.part, window])
        is_test = splitter.assign(rows, strata)
        return is_test, splitter.keys(rows - int(np.count_nonzero(is_test))), splitter.strata()

    def count(self, strata: dict[bytes, int]) -> None:
        """A window's rows of each stratum, as ``assign`` gave them."""
        self._strata.update(strata)

    def strata(self) -> dict[bytes, int]:
        """The rows seen of each stratum (b"" when unstratified)."""
        return dict(self._strata)

    def strata_sizes(self) -> list[int]:
        return list(self._strata.values())

    def rows_for_both(self) -> int:
        return StratifiedSplitter(self.fraction, 0).rows_for_both()
