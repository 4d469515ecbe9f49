"""Stored results that must not be served: output files gone or edited, a recompute asked
for, rows invalidated by tag values. Each is computed again, and the new result replaces the
stored one."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

import podline
from podline import function_pod
from podline.errors import OutputValidationError, PipelineError
from podline.pipeline import Pipeline
from podline.stores import DeltaStore, Store

OUT: list[Path] = []
CALLS: dict[str, list[int]] = {"render": [], "measure": [], "draw": []}


@pytest.fixture(autouse=True)
def _reset(tmp_path: Path) -> None:
    OUT[:] = [tmp_path / "out"]
    OUT[0].mkdir()
    for calls in CALLS.values():
        calls.clear()


@function_pod("figure", live_output=False)
def render(a: int) -> Path:
    CALLS["render"].append(a)
    path = OUT[0] / f"figure-{a}.txt"
    path.write_text("x" * (a + 1))
    return path


@function_pod("size", live_output=False)
def measure(figure: Path) -> int:
    CALLS["measure"].append(len(figure.read_text()))
    return len(figure.read_text())


def build(store: Store, n: int = 3) -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(n)]
    with Pipeline("figures", store) as pipeline:
        measure.pod(render.pod(podline.DictSource(rows, tag_columns=["id"], source_id="nums")))
    return pipeline


def counts(result: podline.pipeline.OrchestratorResult, node: str) -> tuple[int, ...]:
    c = result.counts[node]
    return (c.computed, c.cached, c.failed, c.recomputed)


def test_a_missing_output_file_is_recomputed_for_its_row_alone(store: Store) -> None:
    build(store).run()
    (OUT[0] / "figure-1.txt").unlink()
    CALLS["render"].clear()
    result = build(store).run(error_policy="fail_fast")  # no HashingError, no abort
    assert CALLS["render"] == [1]
    assert counts(result, "render") == (1, 2, 0, 1)
    assert counts(result, "measure") == (0, 3, 0, 0)  # the same content: served from store
    assert (OUT[0] / "figure-1.txt").read_text() == "xx"
    assert "1 packet(s) recomputed (in render)" in str(result)
    status = build(store).status(node="render", run_id=result.run_id)
    reasons = dict(zip(status["id"].to_list(), status["reason"].to_list(), strict=True))
    assert reasons[0] is None
    assert reasons[1] == f"output file missing: {OUT[0] / 'figure-1.txt'}"


def test_an_edited_output_file_is_recomputed_a_touched_one_is_not(store: Store) -> None:
    build(store).run()
    edited, touched = OUT[0] / "figure-2.txt", OUT[0] / "figure-0.txt"
    edited.write_text("hand edit")
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    CALLS["render"].clear()
    result = build(store).run()
    assert CALLS["render"] == [2]
    assert edited.read_text() == "xxx"
    status = build(store).status(node="render", run_id=result.run_id)
    assert status.filter(pl.col("id") == 2)["reason"].to_list() == [
        f"output file changed: {edited}"
    ]
    # The recomputed result replaced the stale one: the next run serves everything.
    CALLS["render"].clear()
    again = build(store).run()
    assert CALLS["render"] == []
    assert counts(again, "render") == (0, 3, 0, 0)


def test_a_same_size_edit_with_its_mtime_put_back_is_recomputed(store: Store) -> None:
    """``cp -p`` or ``rsync -t`` over an output file keeps its size and mtime, never its
    ctime: the file is hashed again and the change found, and the row downstream, which
    reads the file, sees the same content as the producer's result (a user test found the
    producer serving its result while the consumer computed from the edited file)."""
    build(store).run()
    edited = OUT[0] / "figure-1.txt"
    before = edited.stat()
    edited.write_text("yy")
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    CALLS["render"].clear()
    CALLS["measure"].clear()
    result = build(store).run()
    assert CALLS["render"] == [1]
    assert edited.read_text() == "xx"
    assert counts(result, "render") == (1, 2, 0, 1)
    assert counts(result, "measure") == (0, 3, 0, 0)  # the rewritten file: as stored
    status = build(store).status(node="render", run_id=result.run_id)
    assert status.filter(pl.col("id") == 1)["reason"].to_list() == [
        f"output file changed: {edited}"
    ]


def test_results_are_replaced_not_duplicated(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store")
    build(store).run()
    (OUT[0] / "figure-0.txt").unlink()
    build(store).run()
    store.flush()
    memo = [p for p in (tmp_path / "store" / "results").rglob("*.delta") if "render" in str(p)]
    ids = DeltaTable(str(memo[0])).to_pyarrow_table(columns=["__record_id"]).column(0)
    assert len(ids) == len(set(ids.to_pylist())) == 3


def test_a_path_to_no_file_fails_its_row() -> None:
    @function_pod("out", live_output=False)
    def claims(a: int) -> Path:
        return OUT[0] / f"never-written-{a}.txt"

    result = claims.execute(
        podline.DictSource([{"id": 1, "a": 1}], tag_columns=["id"]), on_error="continue"
    )
    error = result.errors[0]
    assert isinstance(error.__cause__, OutputValidationError)
    assert "it returned a path to no readable file" in str(error)
    assert "never-written-1.txt' does not exist" in str(error)


# --------------------------------------------------------------------------- recompute

DRAWS = iter(range(1000, 100_000))


@function_pod("draw", live_output=False)
def draw(a: int) -> int:
    # Not a pure function: what a recompute is for (an external resource changed).
    CALLS["draw"].append(a)
    return next(DRAWS)


def draws(store: Store, n: int = 3) -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(n)]
    with Pipeline("draws", store) as pipeline:
        draw.pod(podline.DictSource(rows, tag_columns=["id"], source_id="nums"))
    return pipeline


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_recompute_runs_every_call_again_and_replaces_results(
    store: Store, orchestrator: str
) -> None:
    first = draws(store)
    first.run(orchestrator=orchestrator)
    before = first.draw.as_table().column("draw").to_pylist()
    result = draws(store).run(orchestrator=orchestrator, recompute=True)
    assert counts(result, "draw") == (3, 0, 0, 3)
    assert sorted(CALLS["draw"]) == [0, 0, 1, 1, 2, 2]
    status = draws(store).status(run_id=result.run_id)
    assert set(status["reason"]) == {"recompute requested"}
    # The new values are stored: a plain run serves them.
    again = draws(store)
    assert counts(again.run(orchestrator=orchestrator), "draw") == (0, 3, 0, 0)
    after = again.draw.as_table().column("draw").to_pylist()
    assert after != before
    assert set(after).isdisjoint(before)


def test_recompute_names_nodes(store: Store) -> None:
    build(store).run()
    result = build(store).run(recompute="measure")
    assert counts(result, "render") == (0, 3, 0, 0)
    assert counts(result, "measure") == (3, 0, 0, 3)
    with pytest.raises(PipelineError, match="recompute names no function node: 'nope'"):
        build(store).run(recompute=["measure", "nope"])


def test_invalidate_forgets_chosen_rows(store: Store) -> None:
    pipeline = draws(store, n=4)
    pipeline.run()
    assert pipeline.invalidate("draw", id=2) == 1
    CALLS["draw"].clear()
    result = draws(store, n=4).run()
    assert CALLS["draw"] == [2]
    assert counts(result, "draw") == (1, 3, 0, 0)
    assert pipeline.invalidate("draw") == 4  # every row
    with pytest.raises(podline.errors.InputValidationError, match="no tag column\\(s\\) 'x'"):
        pipeline.invalidate("draw", x=1)
    with pytest.raises(PipelineError, match="invalidate names no function node: 'DictSource'"):
        pipeline.invalidate("DictSource")
