"""The seeded train/test assignment, decided per block from the row count (and strata) only."""

from __future__ import annotations

import math

import numpy as np


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

    def rows_for_both(self) -> int:
        """The fewest rows a stratum needs to send one to test and keep one for training."""
        rows = 1
        while math.floor(self._fraction * rows + 0.5) < 1 or rows - math.floor(self._fraction * rows + 0.5) < 1:
            rows += 1
        return rows

    def strata_sizes(self) -> list[int]:
        """The rows seen of each stratum (of the one stratum b"" when unstratified)."""
        return list(self._seen.values())

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
