"""Reading observations back (fresh objects, a fresh process, filters, errors) and the
promise that observing never breaks a run (failed writes warn; slow calls still show)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from tests.internals import count_id_reads

import podline
from podline import function_pod
from podline.observability import (
    LoggingObserver,
    ObservabilityError,
    ObservationWarning,
    PipelineObservations,
    StatusObserver,
    inspect,
)
from podline.pipeline import CompositeObserver, Pipeline
from podline.stores import (
    RECORD_ID,
    DelegatingStore,
    DeltaStore,
    PathLike,
    Store,
    normalize_path,
)


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


@function_pod("y", live_output=False)
def odd_fails(a: int) -> int:
    if a % 2:
        raise ArithmeticError(f"odd {a}")
    return a


@function_pod("size", live_output=False)
def size(a: list[int]) -> int:
    return len(a)


@function_pod("s", live_output=False)
def slow(a: int) -> int:
    time.sleep(0.4 if a == 0 else 0)
    return a


def numbers(n: int = 3, label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i} for i in range(n)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def build(store: Store, pod: Any = add, n: int = 4, name: str = "study") -> Pipeline:
    with Pipeline(name, store) as pipeline:
        pod.pod(numbers(n))
    return pipeline


# --------------------------------------------------------------------------- reading back


def test_a_fresh_reader_sees_what_a_run_wrote(store: Store) -> None:
    result = build(store, odd_fails).run()
    fresh = inspect(store, "study")
    assert isinstance(fresh, PipelineObservations)
    status = fresh.status()
    assert status.height == 4
    assert status["state"].to_list()[:2] == ["FAILED", "FAILED"]
    assert fresh.logs(state="FAILED")["id"].sort().to_list() == [1, 3]
    assert fresh.runs()["run_id"].to_list() == [result.run_id]
    assert fresh.nodes == ["numbers", "odd_fails"]


def test_a_fresh_process_reads_a_delta_store(tmp_path: Any) -> None:
    root = tmp_path / "store"
    with DeltaStore(root) as store:
        result = build(store, odd_fails).run()
    code = (
        "import json, podline.observability as o\n"
        f"view = o.inspect({str(root)!r}, 'study')\n"
        "status = view.status()\n"
        "print(json.dumps({'states': status['state'].to_list(),"
        " 'failed': view.logs(state='FAILED')['error_message'].to_list(),"
        " 'runs': view.runs()['run_id'].to_list()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["states"] == ["FAILED", "FAILED", "SUCCESS", "SUCCESS"]
    assert sorted(seen["failed"]) == ["odd 1", "odd 3"]
    assert seen["runs"] == [result.run_id]


def test_filters_by_tag_value_node_run_and_state(store: Store) -> None:
    pipeline = build(store, odd_fails, n=6)
    first = pipeline.run()
    second = build(store, odd_fails, n=6).run()
    assert pipeline.logs(id=3)["run_id"].to_list() == [first.run_id, second.run_id]
    assert pipeline.logs(id=3, run_id=second.run_id).height == 1
    assert pipeline.logs(tags={"id": 5}, state="failed").height == 2
    assert pipeline.logs(id=2).height == 1  # a success: computed once, then cached
    assert pipeline.status(id=2)["state"].to_list() == ["CACHED"]
    assert pipeline.status(state="FAILED", run_id=first.run_id).height == 3
    assert pipeline.status(node="odd_fails").height == 6
    assert pipeline.status(node="numbers").height == 0  # a known node without packets


def test_unknown_names_are_errors_listing_the_known_ones(store: Store) -> None:
    pipeline = build(store)
    pipeline.run()
    with pytest.raises(ObservabilityError, match=r"no node 'ad'; nodes are 'add', 'numbers'"):
        pipeline.logs(node="ad")
    with pytest.raises(ObservabilityError, match=r"unknown state 'DONE'; states are 'CACHED', "):
        pipeline.status(state="DONE")
    with pytest.raises(ObservabilityError, match=r"no tag column\(s\) 'subject'.*'id'"):
        pipeline.logs(subject="s1")
    build(store, name="other").run()
    with pytest.raises(ObservabilityError, match=r"pipelines there are 'other', 'study'"):
        inspect(store, "stuyd")
    with pytest.raises(ObservabilityError):
        inspect(store.to_config() if isinstance(store, DeltaStore) else store, "missing")


def test_nothing_recorded_reads_as_empty_typed_frames(store: Store) -> None:
    view = PipelineObservations(store, "never")
    for frame in (view.status(), view.logs(), view.runs()):
        assert frame.height == 0
        assert "run_id" in frame.columns
    assert view.status().schema["timestamp"] == pl.Datetime("us", "UTC")


def test_a_tag_named_like_a_fixed_column_is_shown_as_tag_colon_name(store: Store) -> None:
    rows = [{"state": s, "a": i, "b": i} for i, s in enumerate(["NY", "CA"])]
    source = podline.DictSource(rows, tag_columns=["state"], label="states")
    with Pipeline("clash", store) as pipeline:
        add.pod(source)
    pipeline.run()
    status = pipeline.status()
    assert set(status["state"]) == {"SUCCESS"}
    assert sorted(status["tag:state"]) == ["CA", "NY"]
    assert pipeline.status(tags={"state": "NY"}).height == 1
    assert pipeline.logs(tags={"state": "CA"})["tag:state"].to_list() == ["CA"]


def test_list_typed_tags_after_a_batch(store: Store) -> None:
    with Pipeline("batched", store) as pipeline:
        size.pod(numbers(5).batch(2))
    pipeline.run()
    status = pipeline.status()
    assert sorted(status["id"].to_list()) == [[0, 1], [2, 3], [4]]
    assert status["id"].dtype == pl.List(pl.Int64)
    record = next(c for c in status.columns if c.startswith("tag:record_id::"))
    assert sorted(status[record].to_list()) == [["#0", "#1"], ["#2", "#3"], ["#4"]]


def test_joined_streams_keep_every_lineages_system_tags(store: Store) -> None:
    left = podline.DictSource([{"id": i, "a": i} for i in range(3)], ["id"], label="left")
    right = podline.DictSource([{"id": i, "b": i} for i in range(3)], ["id"], label="right")
    with Pipeline("joined", store) as pipeline:
        add.pod(left.join(right))
    pipeline.run()
    status = pipeline.status()
    system = [c for c in status.columns if c.startswith("tag:") and "::" in c]
    assert len(system) == 4
    assert all(status[c].null_count() == 0 for c in system)
    logs = pipeline.logs()
    assert sorted(c for c in logs.columns if c in system) == sorted(system)


# --------------------------------------------------------------------------- robustness


class FailingWrites(DelegatingStore):
    """A store whose writes fail at paths below any of ``segments``; everything else is
    delegated to ``inner`` (so it wraps any backend)."""

    def __init__(self, inner: Store, segments: frozenset[str], flush_fails: bool = False):
        super().__init__(inner)
        self.segments = segments
        self.flush_fails = flush_fails

    def wrap(self, inner: Store) -> FailingWrites:
        return FailingWrites(inner, self.segments, self.flush_fails)

    def write(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        if self.segments & set(self.inner.prefix + normalize_path(path)):
            raise podline.StoreError("disk full (a test double)")
        return self.inner.write(path, table, id_column=id_column)

    def append(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        if self.segments & set(self.inner.prefix + normalize_path(path)):
            raise podline.StoreError("disk full (a test double)")
        return self.inner.append(path, table, id_column=id_column)

    def flush(self) -> None:
        if self.flush_fails:
            raise podline.StoreError("flush failed (a test double)")
        self.inner.flush()


def test_failed_observation_writes_warn_and_the_run_succeeds(store: Store) -> None:
    failing = FailingWrites(store, frozenset({"status", "logs"}))
    pipeline = build(failing, odd_fails)  # type: ignore[arg-type]
    with pytest.warns(ObservationWarning, match=r"could not record .* of node 'odd_fails'"):
        result = pipeline.run()
    assert result.counts["odd_fails"].computed == 2
    assert pipeline.odd_fails.as_table().column("y").to_pylist() == [0, 2]
    assert pipeline.status().height == 0
    assert pipeline.runs().height == 1  # the run records were written


def test_a_failed_flush_of_observations_warns(store: Store) -> None:
    scope = FailingWrites(store.at("pipelines", "study", "status"), frozenset(), True)
    pipeline = build(store)
    with pytest.warns(ObservationWarning, match="could not flush status rows"):
        result = pipeline.run(observer=StatusObserver(scope))  # type: ignore[arg-type]
    assert result.counts["add"].computed == 4
    assert pipeline.status().height == 4  # written; only the flush failed


def test_a_slow_call_shows_as_running_while_it_runs(store: Store) -> None:
    pipeline = build(store, slow, n=2)
    scope = store.at("pipelines", "study", "status")
    observer = StatusObserver(scope, flush_seconds=0.05)
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            table = scope.scan(pipeline.slow.identity_path[:2])
            if table is not None and table.num_rows:
                seen.extend(table.column("__meta:state").to_pylist())
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        pipeline.run(observer=observer)
    finally:
        done.set()
        watcher.join()
    assert "RUNNING" in seen
    assert set(pipeline.status()["state"]) == {"SUCCESS"}


def test_a_composite_of_the_defaults_and_more_observers(store: Store) -> None:
    pipeline = build(store)
    extra = LoggingObserver(store.at("elsewhere"), log_cached=True)
    pipeline.run(observer=CompositeObserver(pipeline.default_observer(), extra))
    assert pipeline.status().height == 4
    assert pipeline.logs().height == 4
    # The composite hands each capture to both loggers.
    (path,) = store.list("elsewhere")
    elsewhere = store.scan(path)
    assert elsewhere is not None
    assert elsewhere.column("__meta:state").to_pylist() == ["SUCCESS"] * 4


def test_observers_reject_bad_batch_sizes(store: Store) -> None:
    with pytest.raises(ValueError, match="batch_rows must be at least 1"):
        StatusObserver(store, batch_rows=0)
    assert "log_cached=True" in repr(LoggingObserver(store, log_cached=True))


def test_reruns_do_not_read_the_history_of_observations(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Status rows, log rows and run records are appended: a run never reads the ids of
    # earlier runs' observations, so its cost does not grow with the history.
    root = tmp_path / "store"
    for _ in range(3):
        with DeltaStore(root) as store:
            build(store).run()
    reads = count_id_reads(monkeypatch)
    with DeltaStore(root) as store:
        pipeline = build(store)
        result = pipeline.run()
        assert result.counts["add"].cached == 4
        assert reads == []
        assert pipeline.runs().height == 4
        assert pipeline.status(latest=False).height == 16


def test_a_run_id_given_twice_is_recorded_twice(store: Store) -> None:
    pipeline = build(store)
    pipeline.run(run_id="nightly")
    pipeline.run(run_id="nightly")
    records = store.scan(("pipelines", "study", "runs"))
    assert records is not None
    assert records.column("run_id").to_pylist() == ["nightly"] * 4  # two nodes, two runs
