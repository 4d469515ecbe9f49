"""Status and logging observers end to end: what runs record, on every store backend.

Every test runs a real pipeline (``store`` fixture: memory and Delta) with the default
observers and checks the records through the reader, and where it matters the stored
columns themselves.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

import podline
from podline import SKIP, function_pod
from podline.columns import is_system_tag
from podline.hashing import HASH_SCHEME
from podline.observability import (
    LoggingObserver,
    PipelineObservations,
    StatusObserver,
    inspect,
)
from podline.observability.columns import (
    ERROR_TYPE,
    NODE,
    RUN_ID,
    STATE,
    TIMESTAMP,
)
from podline.pipeline import CompositeObserver, NoOpObserver, Observer, Pipeline
from podline.stores import RECORD_ID, DeltaStore, Store
from podline.stores._delta_commit import Committer


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


@function_pod("doubled", live_output=False)
def double(total: int) -> int:
    return SKIP if total == 0 else 2 * total


@function_pod("y", live_output=False)
def fragile(a: int) -> int:
    print(f"trying {a}")
    print("about to check", file=sys.stderr)
    logging.getLogger("podline.tests.fragile").warning("checking %d", a)
    if a % 3 == 1:
        raise ValueError(f"a == {a}")
    return a


@function_pod("y", live_output=False)
def interrupted(a: int) -> int:
    if a == 2:
        raise KeyboardInterrupt
    return a


def numbers(n: int = 3, label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i} for i in range(n)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def two_nodes(store: Store, n: int = 3, name: str = "two") -> Pipeline:
    with Pipeline(name, store) as pipeline:
        double.pod(add.pod(numbers(n)))
    return pipeline


def one_node(store: Store, pod: Any, n: int = 6, name: str = "one") -> Pipeline:
    with Pipeline(name, store) as pipeline:
        pod.pod(numbers(n))
    return pipeline


def system_tag_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(("tag:source_id::", "tag:record_id::"))]


def stored(store: Store, pipeline: str, scope: str) -> list[tuple[str, ...]]:
    return store.at("pipelines", pipeline, scope).list()


# --------------------------------------------------------------------------- status


def test_success_records_one_terminal_state_per_packet(store: Store) -> None:
    pipeline = one_node(store, add, n=4)
    result = pipeline.run()
    status = pipeline.status()
    assert status.height == 4
    assert set(status["state"]) == {"SUCCESS"}
    assert status["node"].to_list() == ["add"] * 4
    assert sorted(status["id"].to_list()) == [0, 1, 2, 3]
    assert status["id"].dtype == pl.Int64  # typed by the node's tag schema
    assert set(status["run_id"]) == {result.run_id}
    assert set(status["pipeline_uri"]) == {pipeline.uri}
    assert status["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert (status["started_at"] <= status["timestamp"]).all()
    assert status["node_hash"].str.starts_with(f"{HASH_SCHEME}:").all()
    system = system_tag_columns(status)
    assert len(system) == 2
    for column in system:
        assert status[column].null_count() == 0  # the reference system wrote these as null
    assert sorted(status[next(c for c in system if "record_id" in c)]) == [
        "#0",
        "#1",
        "#2",
        "#3",
    ]
    assert not any(c.startswith("__") for c in status.columns)


def test_stored_columns_use_reserved_names_and_node_labels_and_pipeline_hashes(
    store: Store,
) -> None:
    pipeline = one_node(store, add, n=2)
    pipeline.run()
    node = pipeline.add
    label_and_pipeline_hash = node.identity_path[:2]
    assert label_and_pipeline_hash == (node.label, node.pipeline_hash().short(16))
    # Beside the status table: its markers' (see podline/observability/compact.py).
    markers = (*label_and_pipeline_hash, "listed")
    assert stored(store, "one", "status") == [label_and_pipeline_hash, markers]
    assert stored(store, "one", "logs") == [label_and_pipeline_hash]
    table = store.at("pipelines", "one", "status").scan(label_and_pipeline_hash)
    assert table is not None
    fixed = [c for c in table.column_names if c.startswith("__meta:")]
    assert {RUN_ID, STATE, NODE, TIMESTAMP, ERROR_TYPE} <= set(fixed)
    tags = [c for c in table.column_names if not c.startswith("__meta:") and c != RECORD_ID]
    assert tags[0] == "id"
    assert all(is_system_tag(c) for c in tags[1:])
    assert len(set(table.column(RECORD_ID).to_pylist())) == table.num_rows


def test_continue_records_failures_first_with_the_functions_error(store: Store) -> None:
    pipeline = one_node(store, fragile, n=6)
    result = pipeline.run(error_policy="continue")
    assert result.counts["fragile"].failed == 2
    status = pipeline.status()
    assert status["state"].to_list() == ["FAILED", "FAILED", *["SUCCESS"] * 4]
    failed = status.filter(pl.col("state") == "FAILED")
    assert sorted(failed["id"]) == [1, 4]
    assert set(failed["error_type"]) == {"ValueError"}
    assert sorted(failed["error_message"]) == ["a == 1", "a == 4"]
    assert status.filter(pl.col("state") == "SUCCESS")["error_type"].null_count() == 4
    assert pipeline.status(state="failed")["id"].sort().to_list() == [1, 4]


def test_fail_fast_records_the_failure_and_the_run_as_incomplete(store: Store) -> None:
    pipeline = one_node(store, fragile, n=3)
    with pytest.raises(podline.FunctionCallError, match="a == 1"):
        pipeline.run(error_policy="fail_fast")
    status = pipeline.status()
    assert status.filter(pl.col("state") == "FAILED")["id"].to_list() == [1]
    assert sorted(status.filter(pl.col("state") == "SUCCESS")["id"]) == [0]
    # No call starts after the failure: row 2 keeps the RUNNING row its batch began with.
    assert status.filter(pl.col("state") == "RUNNING")["id"].to_list() == [2]
    runs = pipeline.runs()
    assert runs.height == 1
    run = runs.row(0, named=True)
    assert run["complete"] is False  # no run record: the run raised
    assert (run["computed"], run["failed"], run["unfinished"]) == (1, 1, 1)
    assert pipeline.logs(state="FAILED")["error_message"].to_list() == ["a == 1"]


def test_two_function_nodes_each_get_their_own_rows(store: Store) -> None:
    pipeline = two_nodes(store, n=3)
    pipeline.run()
    status = pipeline.status()
    assert sorted(status["node"].unique()) == ["add", "double"]
    by_node = {
        node: dict(zip(frame["id"], frame["state"], strict=True))
        for (node,), frame in status.group_by("node")
    }
    assert by_node["add"] == {0: "SUCCESS", 1: "SUCCESS", 2: "SUCCESS"}
    assert by_node["double"] == {0: "SKIPPED", 1: "SUCCESS", 2: "SUCCESS"}
    assert pipeline.status(node="double", state="SKIPPED")["id"].to_list() == [0]
    assert pipeline.observations.nodes == ["add", "double", "numbers"]


def test_cache_hits_show_as_cached_on_a_second_run(store: Store) -> None:
    pipeline = two_nodes(store, n=3)
    first = pipeline.run()
    second = two_nodes(store, n=3).run()
    status = pipeline.status()
    assert set(status["run_id"]) == {second.run_id}
    add_rows = status.filter(pl.col("node") == "add")
    assert set(add_rows["state"]) == {"CACHED"}
    assert add_rows["cached"].all()
    # A stored skip stays a skip (its row says it was not computed either).
    skipped = status.filter(pl.col("state") == "SKIPPED")
    assert skipped["id"].to_list() == [0]
    assert skipped["cached"].to_list() == [True]
    first_run = pipeline.status(run_id=first.run_id)
    assert set(first_run.filter(pl.col("node") == "add")["state"]) == {"SUCCESS"}
    runs = pipeline.runs()
    assert runs["run_id"].to_list() == [second.run_id, first.run_id]  # newest first
    assert runs["complete"].to_list() == [True, True]
    assert runs["computed"].to_list() == [0, 5]
    assert runs["cached"].to_list() == [5, 0]
    # Cache hits are not logged by default.
    assert pipeline.logs(run_id=second.run_id).height == 0


def test_history_keeps_every_run(store: Store) -> None:
    pipeline = one_node(store, add, n=2)
    pipeline.run()
    one_node(store, add, n=2).run()
    history = pipeline.status(latest=False)
    assert history["state"].to_list() == ["SUCCESS", "SUCCESS", "CACHED", "CACHED"]


class AbortOnSecondEnd(Observer):
    """An observer that breaks the run in the middle of a node's packet ends."""

    def __init__(self) -> None:
        self.ends = 0

    def on_packet_end(self, **kwargs: Any) -> None:
        self.ends += 1
        if self.ends == 2:
            raise RuntimeError("observer gave up")


def test_a_run_aborted_mid_node_leaves_running_rows(store: Store) -> None:
    pipeline = one_node(store, add, n=4)
    # The aborting observer comes first: the status observer never hears of the second end
    # (nor, when nodes report ends a batch at a time, of any end).
    observer = CompositeObserver(AbortOnSecondEnd(), pipeline.default_observer())
    with pytest.raises(RuntimeError, match="observer gave up"):
        pipeline.run(observer=observer)
    status = pipeline.status()
    assert sorted(status["id"]) == [0, 1, 2, 3]
    running = status.filter(pl.col("state") == "RUNNING")
    assert running.height >= 3
    assert set(status["state"]) <= {"RUNNING", "SUCCESS"}
    run = pipeline.runs().row(0, named=True)
    assert (run["complete"], run["unfinished"]) == (False, running.height)
    # Calls whose packets never ended are logged without a state, if at all.
    assert set(pipeline.logs()["state"]) <= {"SUCCESS", None}


def test_keyboard_interrupt_commits_finished_calls_and_leaves_the_rest_running(
    store: Store,
) -> None:
    pipeline = one_node(store, interrupted, n=4)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run()
    fresh = inspect(store, "one")
    status = fresh.status()
    # Calls 0 and 1 finished before Ctrl-C: their results, records and rows were committed.
    states = dict(zip(status["id"].to_list(), status["state"].to_list(), strict=True))
    assert states == {0: "SUCCESS", 1: "SUCCESS", 2: "RUNNING", 3: "RUNNING"}
    assert fresh.runs()["unfinished"].to_list() == [2]
    assert sorted(fresh.logs()["id"].to_list()) == [0, 1]


# --------------------------------------------------------------------------- logs


def test_logs_hold_each_calls_output_and_errors(store: Store) -> None:
    pipeline = one_node(store, fragile, n=3)
    result = pipeline.run()
    logs = pipeline.logs()
    assert logs["id"].to_list() == [0, 1, 2]
    assert logs["state"].to_list() == ["SUCCESS", "FAILED", "SUCCESS"]
    assert logs["success"].to_list() == [True, False, True]
    assert logs["stdout"].to_list() == ["trying 0\n", "trying 1\n", "trying 2\n"]
    assert set(logs["stderr"]) == {"about to check\n"}
    assert logs["duration"].min() >= 0
    records = logs["log_records"].to_list()
    assert [r["message"] for r in records[1]] == ["checking 1"]
    assert records[1][0]["level"] == "WARNING"
    assert records[1][0]["logger"] == "podline.tests.fragile"
    failed = pipeline.logs(state="FAILED").row(0, named=True)
    assert (failed["id"], failed["error_type"], failed["error_message"]) == (
        1,
        "ValueError",
        "a == 1",
    )
    assert "raise ValueError" in failed["traceback"]
    assert logs.filter(pl.col("success"))["traceback"].null_count() == 2
    assert set(logs["run_id"]) == {result.run_id}
    for column in system_tag_columns(logs):
        assert logs[column].null_count() == 0
    assert pipeline.logs(id=2)["stdout"].to_list() == ["trying 2\n"]
    assert pipeline.logs(node="fragile", run_id=result.run_id).height == 3
    assert pipeline.logs(run_id="no such run").height == 0


def test_log_rows_carry_the_same_tags_as_status_rows(store: Store) -> None:
    # Part cached, part computed: the logger of each call must get its own packet's tags.
    one_node(store, add, n=3, name="p").run()
    pipeline = one_node(store, add, n=8, name="p")
    result = pipeline.run()
    logs = pipeline.logs(run_id=result.run_id)
    assert logs["id"].to_list() == [3, 4, 5, 6, 7]
    assert logs["stdout"].to_list() == [f"adding {i} and {i}\n" for i in range(3, 8)]
    record = next(c for c in system_tag_columns(logs) if "record_id" in c)
    assert logs[record].to_list() == [f"#{i}" for i in range(3, 8)]
    status = pipeline.status(run_id=result.run_id)
    assert sorted(status.filter(pl.col("state") == "CACHED")["id"]) == [0, 1, 2]


def test_log_cached_logs_cache_hits_too(store: Store) -> None:
    pipeline = one_node(store, add, n=2)
    pipeline.run()
    scope = store.at("pipelines", "one", "logs")
    pipeline.run(observer=LoggingObserver(scope, log_cached=True))
    logs = pipeline.logs()
    assert logs["state"].to_list() == ["SUCCESS", "SUCCESS", "CACHED", "CACHED"]
    cached = logs.filter(pl.col("state") == "CACHED")
    assert cached["cached"].all()
    assert cached["stdout"].null_count() == 2


def test_a_function_returning_skip_is_logged_as_skipped(store: Store) -> None:
    pipeline = two_nodes(store, n=2)
    pipeline.run()
    logs = pipeline.logs(node="double")
    assert dict(zip(logs["id"], logs["state"], strict=True)) == {0: "SKIPPED", 1: "SUCCESS"}


# --------------------------------------------------------------------------- defaults


def test_defaults_can_be_replaced_or_turned_off(store: Store) -> None:
    with Pipeline("quiet", store, observe=False) as quiet:
        add.pod(numbers())
    quiet.run()
    assert stored(store, "quiet", "status") == []
    assert quiet.status().height == 0
    assert quiet.runs().height == 1  # run records do not depend on observers

    pipeline = one_node(store, add)
    pipeline.run(observer=NoOpObserver())
    assert stored(store, "one", "status") == []
    scope = store.at("pipelines", "one", "status")
    pipeline.run(observer=StatusObserver(scope))
    assert stored(store, "one", "status") != []
    assert stored(store, "one", "logs") == []


def test_summary_names_where_the_failure_logs_are(store: Store) -> None:
    pipeline = one_node(store, fragile, n=3)
    result = pipeline.run()
    text = str(result)
    assert "1 packet(s) failed (in fragile)" in text
    assert f"pipeline.logs(state='FAILED', run_id='{result.run_id}')" in text
    assert "pipeline.logs(state=&#x27;FAILED&#x27;" in result._repr_html_()
    again = one_node(store, fragile, n=3, name="other").run(observer=NoOpObserver())
    assert "pipeline.logs" not in str(again)
    assert "on_packet_crash" in str(again)
    clean = one_node(store, add, n=2, name="clean").run()
    assert "failed (in" not in str(clean)


# --------------------------------------------------------------------------- batching


def test_small_batches_write_running_and_terminal_rows_separately(store: Store) -> None:
    pipeline = one_node(store, add, n=5)
    scope = store.at("pipelines", "one", "status")
    pipeline.run(observer=StatusObserver(scope, batch_rows=2, flush_seconds=None))
    history = pipeline.status(latest=False)
    # RUNNING rows written before their packets ended, then the terminal rows.
    assert history.height > 5
    assert set(history["state"]) == {"RUNNING", "SUCCESS"}
    latest = pipeline.status()
    assert latest.height == 5
    assert set(latest["state"]) == {"SUCCESS"}
    assert pipeline.runs()["unfinished"].to_list() == [0]


def test_hooks_on_the_root_observer_go_to_a_view_per_node(store: Store) -> None:
    observer = StatusObserver(store.at("pipelines", "manual", "status"))
    observer.on_run_start(run_id="r1", pipeline_uri="manual@0")
    (tag, packet), *_ = list(numbers(1).iter_packets())
    schema, _ = numbers(1).output_schema(system_tags=True)
    observer.on_node_start(node_label="n", node_hash="h", tag_schema=schema)
    observer.on_packet_start(node_label="n", node_hash="h", tag=tag, packet=packet)
    observer.on_packet_crash(
        node_label="n", node_hash="h", tag=tag, packet=packet, error=KeyError("k")
    )
    observer.on_node_end(node_label="n", node_hash="h")
    observer.on_run_end(run_id="r1")
    status = PipelineObservations(store, "manual").status()
    row = status.row(0, named=True)
    assert (row["node"], row["state"], row["error_type"], row["id"]) == (
        "n",
        "FAILED",
        "KeyError",
        0,
    )


def test_the_defaults_under_the_async_orchestrator(store: Store) -> None:
    module = pytest.importorskip("podline.pipeline.async_orchestrator")
    pipeline = two_nodes(store, n=5, name="async")
    result = pipeline.run(orchestrator=module.AsyncPipelineOrchestrator())
    assert result.counts["add"].computed == 5
    status = pipeline.status()
    assert status.height == 10
    by_node = {
        node: sorted(zip(frame["id"], frame["state"], strict=True))
        for (node,), frame in status.group_by("node")
    }
    assert by_node["add"] == [(i, "SUCCESS") for i in range(5)]
    assert by_node["double"] == [(0, "SKIPPED"), *((i, "SUCCESS") for i in range(1, 5))]
    for column in system_tag_columns(status):
        assert status[column].null_count() == 0
    logs = pipeline.logs(node="add")
    assert logs["stdout"].to_list() == [f"adding {i} and {i}\n" for i in range(5)]
    assert pipeline.runs()["complete"].to_list() == [True]


def test_appended_rows_have_distinct_ids_and_their_run_across_writes(store: Store) -> None:
    # Observations are appended, unchecked: their ids must be distinct by construction, and
    # the constant columns (built once per node, then sliced) right in every write,
    # including a last, shorter one.
    pipeline = one_node(store, add, n=7)
    status, logs = (store.at("pipelines", "one", kind) for kind in ("status", "logs"))
    first = pipeline.run(
        observer=CompositeObserver(
            StatusObserver(status, batch_rows=3, flush_seconds=None),
            LoggingObserver(logs, batch_rows=3, flush_seconds=None),
        )
    )
    for scope in (status, logs):
        path = scope.list()[0]  # the status table has its markers' beside it (compact.py)
        rows = scope.scan(path)
        assert rows is not None
        ids = rows.column(RECORD_ID).to_pylist()
        assert len(ids) == len(set(ids)) >= 7
        assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{12}", i) for i in ids)
        assert set(rows.column(RUN_ID).to_pylist()) == {first.run_id}
        assert set(rows.column(NODE).to_pylist()) == {"add"}


# --------------------------------------------------------------------------- commits


def _committed_rows(root: Path, part: str) -> list[dict[str, Any]]:
    """The rows delta-rs reads in the Delta tables below ``root`` whose path has ``part``."""
    rows: list[dict[str, Any]] = []
    for table in sorted(root.rglob("*.delta")):
        if part in table.parts and table.name != "listed.delta":
            rows += DeltaTable(str(table)).to_pyarrow_table().to_pylist()
    return rows


def test_a_cached_re_run_commits_its_status_rows_with_the_run_record_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_nodes(DeltaStore(tmp_path), n=3).run()
    rounds: list[set[str]] = []
    flush_tables = Committer._flush_tables

    def spy(self: Committer, work: list[Any]) -> Any:
        rounds.append({"/".join(path[2:4]) for path, _, _ in work})
        return flush_tables(self, work)

    monkeypatch.setattr(Committer, "_flush_tables", spy)
    # As a fresh process would: a new store and pipeline on the same directory.
    result = two_nodes(DeltaStore(tmp_path), n=3).run()
    assert result.counts["add"].cached == 3
    # One round of commits, side by side: double's status rows (it skipped a packet) and
    # the run record, which carries the one status row of add (fully cached: carried.py).
    assert [r for r in rounds if r] == [{"status/double", "runs"}]
    # Committed when run() returned, as delta-rs reads them.
    status = _committed_rows(tmp_path, "status")
    cached = [r for r in status if r[RUN_ID] == result.run_id]
    # A row for the cached packets of double, and its skipped packet.
    assert sorted((r[NODE], r[STATE]) for r in cached) == [
        ("double", "CACHED"),
        ("double", "SKIPPED"),
    ]
    runs = _committed_rows(tmp_path, "runs.delta")
    carried = {r["node"]: r["status_packets"] for r in runs if r["run_id"] == result.run_id}
    assert carried == {"add": 3, "double": None, "numbers": None}


def test_a_run_that_raises_commits_the_rows_observed_before_it_raises(tmp_path: Path) -> None:
    pipeline = one_node(DeltaStore(tmp_path), fragile, n=3)
    with pytest.raises(podline.FunctionCallError, match="a == 1"):
        pipeline.run(error_policy="fail_fast")
    states = {r[STATE] for r in _committed_rows(tmp_path, "status")}
    assert states == {"SUCCESS", "FAILED", "RUNNING"}  # (row 2's call never started)
    assert _committed_rows(tmp_path, "runs.delta") == []  # no run record: the run raised


def test_finished_work_is_committed_when_its_run_record_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run record (and the code records before it) come last, committed with the rows
    # the observers buffered at the run's end (a cached run's status rows); if writing the
    # records fails, those rows are committed all the same before run() raises.
    two_nodes(DeltaStore(tmp_path), n=3).run(run_id="r1")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(Pipeline, "_record_code", broken)
    store = DeltaStore(tmp_path, flush_seconds=None)
    with pytest.raises(OSError, match="no space"):
        two_nodes(store, n=3).run(run_id="r2")
    assert {r["run_id"] for r in _committed_rows(tmp_path, "runs.delta")} == {"r1"}
    cached = [r for r in _committed_rows(tmp_path, "status") if r[RUN_ID] == "r2"]
    assert sorted({(r[NODE], r[STATE]) for r in cached}) == [
        ("add", "CACHED"),
        ("double", "CACHED"),
        ("double", "SKIPPED"),
    ]
