"""A fully cached node's compact status row carried by its run-record row
(``podline.observability.carried``): one commit for a fully cached run, and every query
answered as when the row was in the node's status table, read back through delta-rs and
polars as a second implementation of the older layout."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import podline
from podline import function_pod
from podline.observability import PipelineObservations, inspect
from podline.observability.carried import CARRIED_COLUMNS
from podline.pipeline import Pipeline
from podline.stores import DeltaStore, Store
from podline.stores._delta_commit import Committer


@function_pod("y", live_output=False)
def double(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return 2 * x


@function_pod("z", live_output=False)
def inc(y: int) -> int:
    if y > 10:
        raise ValueError("too large")
    return y + 1


def build(store: Store, values: list[int]) -> Pipeline:
    rows = [{"id": i, "x": v} for i, v in enumerate(values)]
    with Pipeline("p", store) as pipeline:
        inc.pod(double.pod(podline.DictSource(rows, tag_columns=["id"], label="numbers")))
    return pipeline


def runs_in(root: Path, history: list[list[int]], first: int = 0, **options: Any) -> None:
    """Run ``history`` (a source version per run, run ids r<first>, ...) on a Delta store
    at ``root``, each run from a store opened afresh, as a new process would."""
    for i, values in enumerate(history, start=first):
        with DeltaStore(root) as store:
            build(store, values).run(run_id=f"r{i}", **options)


def table_versions(root: Path) -> dict[str, int]:
    """The version of every Delta table below ``root``, as delta-rs reads it."""
    return {
        str(log.parent.relative_to(root)): DeltaTable(str(log.parent)).version()
        for log in root.rglob("_delta_log")
    }


def test_a_fully_cached_run_commits_its_run_record_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_in(tmp_path, [[1, 2, 3], [1, 2, 3]])  # r1: the first cached run, which lists
    before = table_versions(tmp_path)
    rounds: list[set[str]] = []
    flush_tables = Committer._flush_tables

    def spy(self: Committer, work: list[Any]) -> Any:
        rounds.append({"/".join(path[2:]) for path, _, _ in work})
        return flush_tables(self, work)

    monkeypatch.setattr(Committer, "_flush_tables", spy)
    runs_in(tmp_path, [[1, 2, 3]] * 3, first=2)  # fully cached, as r1 was
    assert [r for r in rounds if r] == [{"runs"}] * 3
    after = table_versions(tmp_path)
    assert {t for t in after if after[t] != before[t]} == {"pipelines/p/runs.delta"}
    assert after["pipelines/p/runs.delta"] == before["pipelines/p/runs.delta"] + 3
    # What delta-rs reads in the run records: each node's compact row.
    records = pl.from_arrow(DeltaTable(str(tmp_path / "pipelines/p/runs.delta")).to_pyarrow_table())
    assert isinstance(records, pl.DataFrame)
    found = records.filter(pl.col("status_packets").is_not_null()).sort("run_id", "node")
    assert found.select("run_id", "node", "status_packets", "status_same_as").rows() == [
        (f"r{i}", node, 3, "r0") for i in range(1, 5) for node in ("double", "inc")
    ]
    with DeltaStore(tmp_path) as store:
        latest = inspect(store, "p").status()
    assert latest.height == 6
    assert set(latest["state"]) == {"CACHED"}
    assert set(latest["run_id"]) == {"r4"}


def test_a_run_that_raises_writes_its_cached_nodes_rows_to_their_status_tables(
    tmp_path: Path,
) -> None:
    # inc fails on x = 6 (y = 12); fail_fast raises once double, fully cached, has ended.
    history = [[1, 2], [1, 6], [1, 6]]
    for i, values in enumerate(history):
        with DeltaStore(tmp_path) as store:
            pipeline = build(store, values)
            if i < 2:
                pipeline.run(run_id=f"r{i}")
                continue
            with pytest.raises(podline.FunctionCallError, match="too large"):
                pipeline.run(run_id=f"r{i}", error_policy="fail_fast")
    with DeltaStore(tmp_path) as store:
        observations = inspect(store, "p")
        cached = observations.status(node="double", run_id="r2")
        runs = observations.runs().sort("run_id")
    assert cached.sort("id").select("id", "state").rows() == [(0, "CACHED"), (1, "CACHED")]
    r2 = runs.row(2, named=True)
    # From the status rows: double's two packets (inc's batch raised before it ended).
    assert (r2["run_id"], r2["complete"], r2["cached"]) == ("r2", False, 2)
    status = pl.read_delta(str(next((tmp_path / "pipelines/p/status/double").glob("*.delta"))))
    assert status.filter(pl.col("__meta:run_id") == "r2")["__meta:packets"].to_list() == [2]


# --------------------------------------------------------------------------- differential


def as_stored_before(root: Path) -> None:
    """Rewrite the store at ``root`` as versions before carried rows stored it, with
    delta-rs and polars alone: each carried row appended to its status table, and the run
    records without the carried columns."""
    runs = root / "pipelines" / "p" / "runs.delta"
    records = pl.read_delta(str(runs))
    for row in records.filter(pl.col("status_same_as").is_not_null()).iter_rows(named=True):
        status = pl.DataFrame(
            {
                "__record_id": [f"{row['__record_id']}-compact"],
                "__meta:run_id": [row["run_id"]],
                "__meta:pipeline_uri": [row["pipeline_uri"]],
                "__meta:node": [row["node"]],
                "__meta:node_hash": [row["status_node_hash"]],
                "__meta:sequence": [0],
                "__meta:timestamp": [row["status_timestamp"]],
                "__meta:started_at": [row["status_started_at"]],
                "__meta:state": ["CACHED"],
                "__meta:cached": [True],
                "__meta:packets": [row["status_packets"]],
                "__meta:same_as": [row["status_same_as"]],
            }
        )
        *parent, name = row["status_table"]
        table = root.joinpath("pipelines", "p", "status", *parent, f"{name}.delta")
        write_deltalake(str(table), status.to_arrow(), mode="append", schema_mode="merge")
    older = records.drop(CARRIED_COLUMNS)
    write_deltalake(str(runs), older.to_arrow(), mode="overwrite", schema_mode="overwrite")


QUERIES: dict[str, Callable[[PipelineObservations], pl.DataFrame]] = {
    "status": lambda o: o.status(),
    "every row": lambda o: o.status(latest=False),
    "run r1": lambda o: o.status(run_id="r1"),
    "run r1, every row": lambda o: o.status(run_id="r1", latest=False),
    "cached": lambda o: o.status(state="CACHED"),
    "node inc": lambda o: o.status(node="inc", latest=False),
    "tag": lambda o: o.status(id=0, latest=False),
    "runs": lambda o: o.runs(),
    "node counts": lambda o: o.node_counts(),
    "nodes": lambda o: pl.DataFrame({"node": o.nodes}),
}


def answers(root: Path) -> dict[str, pl.DataFrame]:
    """Every query's answer, its rows in one order (the readers leave ties unordered)."""
    with DeltaStore(root) as store:
        observations = inspect(store, "p")
        found = {name: query(observations) for name, query in QUERIES.items()}
    return {name: ordered(frame) for name, frame in found.items()}


def ordered(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort([c for c, t in frame.schema.items() if not isinstance(t, pl.List)])


# A few versions of the source: x < 0 fails in double, x > 5 in inc.
VERSIONS = st.lists(st.integers(-1, 7), min_size=1, max_size=3)


@settings(
    max_examples=10,  # each example makes up to 5 runs of a pipeline
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(history=st.lists(VERSIONS, min_size=2, max_size=5))
def test_carried_rows_answer_as_rows_in_the_status_tables(history: list[list[int]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        new, old = Path(scratch) / "new", Path(scratch) / "old"
        runs_in(new, history)
        shutil.copytree(new, old)
        as_stored_before(old)
        assert "status_same_as" not in pl.read_delta(str(old / "pipelines/p/runs.delta")).columns
        now, before = answers(new), answers(old)
    for name in QUERIES:
        assert now[name].equals(before[name]), name


def test_carried_rows_read_with_a_store_of_both_layouts(tmp_path: Path) -> None:
    # Runs stored before (rewritten as older versions stored them), then runs carried.
    history = [[1, 2], [1, 2], [1, 2, 3], [1, 2, 3]]
    runs_in(tmp_path / "mixed", history[:2])
    as_stored_before(tmp_path / "mixed")
    runs_in(tmp_path / "mixed", history[2:], first=2)
    runs_in(tmp_path / "reference", history)
    as_stored_before(tmp_path / "reference")
    mixed, reference = answers(tmp_path / "mixed"), answers(tmp_path / "reference")
    times = ("timestamp", "started_at", "finished_at", "seconds", "git_dirty")
    for name in QUERIES:  # two stores: the runs' times differ
        ours, theirs = (
            ordered(f.drop(times, strict=False)) for f in (mixed[name], reference[name])
        )
        assert ours.equals(theirs), name
