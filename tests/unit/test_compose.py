"""One reduce for both maps: the data step's merge and batch scoring's summary compose their workers' readings with
the same function (kmeans_pipeline.data.ranges.compose), which reports the ranges a quoted record of the range
before covers whole, so both remove what those ranges' first readings wrote."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kmeans_pipeline.data.ranges import RangesInconsistent, compose
from kmeans_pipeline.errors import DataValidationError
from kmeans_pipeline.schemas.base import CamelModel
from kmeans_pipeline.schemas.ranges import RangeResult
from kmeans_pipeline.schemas.scores import ScoreRangeResult

STEPS = Path(__file__).resolve().parents[2] / "layers" / "shared" / "kmeans_pipeline" / "steps"


class Item(CamelModel):
    index: int
    again_from: int | None = None


def reading(kind, index, start, end, *, inside=False, if_inside=True, record=None, error=None, lines=10):
    return kind(
        index=index,
        **({"part": 0} if kind is RangeResult else {}),
        start=start,
        end=end,
        aligned_end=end,
        line_base=1,
        lines=lines,
        ends_inside=inside,
        ends_inside_if_inside=if_inside,
        record_if_inside=record,
        error=error,
    )


@pytest.mark.parametrize("kind", [RangeResult, ScoreRangeResult])
def test_a_range_inside_a_record_of_the_range_before_is_covered_and_the_next_one_is_read_again(kind):
    """Range 0 ends inside a quoted field; range 1 has no row start of its own (still inside at its end); range 2's
    first row starts at byte 250."""
    items = [Item(index=i) for i in range(3)]
    firsts = [
        reading(kind, 0, 0, 100, inside=True),
        reading(kind, 1, 100, 200, inside=False, if_inside=True, record=None),
        reading(kind, 2, 200, 300, inside=False, if_inside=False, record=250),
    ]
    composed = compose(items, firsts, {})
    assert [item.index for item, _ in composed.covered] == [1]
    assert composed.covered[0][1] is firsts[1]  # its first reading: what it wrote is nobody's rows
    assert [(item.index, item.again_from) for item in composed.redo] == [(2, 250)]

    # Range 0, read on to the end of its record (past range 1, to byte 250), and range 2 read again from 250.
    firsts[0] = reading(kind, 0, 0, 250, inside=True)
    again = {2: reading(kind, 2, 250, 300)}
    composed = compose(items, firsts, again)
    assert not composed.redo and [item.index for item, _ in composed.covered] == [1]
    assert [(c.item.index, c.result.start, c.lines_before) for c in composed.chosen] == [(0, 0, 1), (2, 250, 11)]


def test_a_problem_is_named_by_its_line_in_the_object_and_where_says_which():
    items = [Item(index=i) for i in range(2)]
    firsts = [reading(RangeResult, 0, 0, 100, lines=7), reading(RangeResult, 1, 100, 200, error="line 3: bad")]
    # The header is line 1, range 0 lines 2-8: range 1's line 3 is line 11.
    with pytest.raises(DataValidationError, match=r"^s3://b/k: line 11: bad$"):
        compose(items, firsts, {}, where=lambda item: "s3://b/k: ")


def test_readings_that_do_not_meet_are_a_bug_not_data():
    items = [Item(index=i) for i in range(2)]
    firsts = [reading(RangeResult, 0, 0, 100), reading(RangeResult, 1, 120, 200)]
    with pytest.raises(RangesInconsistent):
        compose(items, firsts, {})


@pytest.mark.parametrize("step", ["merge_ranges", "finish_scores"])
def test_both_reduces_compose_with_the_one_function_and_neither_resolves_on_its_own(step):
    tree = ast.parse((STEPS / f"{step}.py").read_text())
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "compose" in called and not called & {"resolve", "reading_of", "shift_line"}
