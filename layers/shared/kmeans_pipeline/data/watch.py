"""What a worker learns from the channel rows as it writes them, in a form the reduce can merge: whether they are all
the same row, and the treatments' statistics (:class:`~kmeans_pipeline.data.treatment.TreatmentLearner`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kmeans_pipeline.data.channels import parse_rows
from kmeans_pipeline.data.treatment import TreatmentLearner
from kmeans_pipeline.schemas.run import RunConfig


class Observed:
    """A writer that shows every piece written to it to ``seen`` too."""

    def __init__(self, out: Any, seen: Any) -> None:
        self._out, self._seen = out, seen

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._seen(data)


def learns(config: RunConfig) -> bool:
    """Whether the run has anything to learn from the rows: treatments (not when the features are the raw numbers,
    asked for in so many words), or k, chosen from the sample of training rows when neither the run nor the stack
    sets it."""
    return (
        config.k is None
        or config.standardize is not False
        or any(kind != "numeric" for kind in config.treatments.values())
    )


class Watch:
    """The channel rows as they are written: whether they are all the same, and the treatments' statistics (levels
    over every row, the rest over the training rows) unless there is nothing to learn (``learns``)."""

    def __init__(self, config: RunConfig, seed: Any) -> None:
        self.same = Sameness()
        self.learner = TreatmentLearner(seed=seed) if learns(config) else None

    def train(self, text: bytes, keys: Any = None) -> None:
        """Training rows, with their sample keys (see WindowSplitter)."""
        self.same.see(text)
        if self.learner is not None:
            self.learner.add_text(text, train=True, keys=keys)

    def test(self, text: bytes) -> None:
        self.same.see(text)
        if self.learner is not None:
            self.learner.add_text(text, train=False)


class Sameness:
    """Whether every channel row seen so far holds the first row's values: a file of one row repeated leaves
    K-Means nothing to cluster. Cheap: once two rows differ, it looks no further. Parts merge in file order."""

    def __init__(self, first: bytes | None = None, varied: bool = False) -> None:
        self.first: bytes | None = None
        self.values = np.empty((0, 0))
        self.varied = varied
        if first:
            self._first(first)

    def _first(self, row: bytes) -> None:
        self.first = row
        self.values = parse_rows(row, row.count(b",") + 1)

    def see(self, text: bytes) -> None:
        if self.varied or not text:
            return
        if self.first is None:
            self._first(text[: text.index(b"\n") + 1])
        assert self.first is not None
        if len(text) % len(self.first) == 0 and text == self.first * (len(text) // len(self.first)):
            return
        self.varied = bool((parse_rows(text, self.values.shape[1]) != self.values).any())

    def merge(self, first: str | None, varied: bool) -> None:
        """Another part's first row and whether its rows varied."""
        if varied:
            self.varied = True
        if first:
            self.see(first.encode())

    def problem(self, rows: int, columns: list[str]) -> str | None:
        if self.varied or self.first is None:
            return None
        values = ", ".join(f"{name}={value:.9g}" for name, value in zip(columns, self.values[0].tolist()))
        return f"all {rows:,} data rows hold the same feature values ({values}): K-Means has nothing to cluster"
