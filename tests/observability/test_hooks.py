"""The status and logging observers driven hook by hook, without a pipeline.

Function nodes report packets a batch at a time (``on_packets_start`` / ``on_packets_end``);
other callers may report them one by one (``on_packet_start`` / ``on_packet_end`` /
``on_packet_crash`` and packet loggers). Both paths must record the same rows, so each is
driven here directly, with hand-made batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import podline
from podline.executors import CallCapture, LogEntry
from podline.functions import RowStatus
from podline.observability import LoggingObserver, PipelineObservations, StatusObserver
from podline.stores import Store

SYSTEM = "__tag:record_id::0123456789ab"
_CODE = {status: index for index, status in enumerate(RowStatus)}


def source(n: int) -> podline.Source:
    return podline.DictSource([{"id": i, "a": i} for i in range(n)], tag_columns=["id"])


class Both:
    """Hands every hook to a status and a logging observer (or node view), like a
    composite; the logging one's packet loggers are used."""

    def __init__(self, status: Any, logs: Any) -> None:
        self.status, self.logs = status, logs

    def __getattr__(self, hook: str) -> Callable[..., None]:
        def call(**kwargs: Any) -> None:
            getattr(self.status, hook)(**kwargs)
            getattr(self.logs, hook)(**kwargs)

        return call

    def contextualize(self, *path: str) -> Both:
        return Both(self.status.contextualize(*path), self.logs.contextualize(*path))

    def create_packet_logger(self, tag: podline.Tag, packet: podline.Packet) -> Any:
        return self.logs.create_packet_logger(tag, packet)


def observers(store: Store, **options: int | None) -> Both:
    scope = store.at("pipelines", "hooks")
    return Both(
        StatusObserver(scope.at("status"), **options),  # type: ignore[arg-type]
        LoggingObserver(scope.at("logs"), **options),  # type: ignore[arg-type]
    )


def capture(text: str, error: str | None = None) -> CallCapture:
    call = CallCapture()
    call.stdout = text
    call.end = call.start + 0.5
    call.logs = [LogEntry("INFO", "me", f"log {text}", call.start)]
    if error is not None:
        call.error_type, call.error_message, call.traceback = "ValueError", error, "Traceback"
    return call


@dataclass(frozen=True, eq=False)
class Batch:
    """A hand-made batch of packets (what the observers read from a node's batch)."""

    table: pa.Table
    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    computed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    started: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    errors: Mapping[int, BaseException] = field(default_factory=dict)
    captures: Mapping[int, CallCapture] = field(default_factory=dict)
    call_times: np.ndarray | None = None
    reasons: Mapping[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.num_rows

    def tags(self) -> pa.Table:
        return self.table


def tags(ids: list[int]) -> pa.Table:
    return pa.table(
        {"id": pa.array(ids, pa.int64()), SYSTEM: pa.array([f"#{i}" for i in ids], pa.string())}
    )


def run(observer: Both, label: str = "f") -> Both:
    observer.on_run_start(run_id="r1", pipeline_uri="hooks@0")
    node = observer.contextualize(label, "p", "c")
    schema, _ = source(1).output_schema(system_tags=True)
    node.on_node_start(node_label=label, node_hash="pod1:h", tag_schema=schema)
    return node


def finish(observer: Both, node: Both, label: str = "f") -> None:
    node.on_node_end(node_label=label, node_hash="pod1:h")
    observer.on_run_end(run_id="r1")


# --------------------------------------------------------------------------- batch hooks


def four_outcomes() -> Batch:
    codes = [RowStatus.COMPUTED, RowStatus.FAILED, RowStatus.SKIPPED, RowStatus.CACHED]
    return Batch(
        tags([0, 1, 2, 3]),
        codes=np.array([_CODE[c] for c in codes], np.int8),
        computed=np.array([True, True, True, False]),
        started=np.array([True, True, True, False]),
        errors={1: podline.FunctionCallError("f failed")},
        captures={0: capture("zero"), 1: capture("one", "bad one"), 2: capture("two")},
    )


def test_batch_hooks_record_one_row_per_packet(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    before = time.time()
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([0, 1, 2])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=four_outcomes())
    finish(observer, node)
    view = PipelineObservations(store, "hooks")
    status = view.status(latest=False).sort("id")
    assert status["state"].to_list() == ["SUCCESS", "FAILED", "SKIPPED", "CACHED"]
    assert status["cached"].to_list() == [False, False, False, True]
    assert status["error_message"].to_list() == [None, "f failed", None, None]
    assert status["tag:record_id::0123456789ab"].to_list() == ["#0", "#1", "#2", "#3"]
    started = status["started_at"].dt.epoch("us").to_list()
    assert started[0] == started[1] == started[2] >= before * 1e6 - 1
    assert started[3] > started[0]  # a cached packet starts as it ends
    logs = view.logs().sort("id")
    assert logs["id"].to_list() == [0, 1, 2]
    assert logs["state"].to_list() == ["SUCCESS", "FAILED", "SKIPPED"]
    assert logs["stdout"].to_list() == ["zero", "one", "two"]
    assert logs["success"].to_list() == [True, False, True]
    assert logs["error_message"].to_list() == [None, "bad one", None]
    assert logs["duration"].to_list() == [0.5, 0.5, 0.5]
    assert [r[0]["message"] for r in logs["log_records"].to_list()] == [
        "log zero",
        "log one",
        "log two",
    ]


def test_batch_running_rows_written_before_the_end_stay(store: Store) -> None:
    observer = observers(store, batch_rows=2, flush_seconds=None)
    node = run(observer)
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([0, 1, 2])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=four_outcomes())
    finish(observer, node)
    history = PipelineObservations(store, "hooks").status(latest=False)
    assert history["state"].to_list() == [
        *["RUNNING"] * 3,
        "SUCCESS",
        "FAILED",
        "SKIPPED",
        "CACHED",
    ]
    assert PipelineObservations(store, "hooks").runs()["unfinished"].to_list() == [0]


def test_an_end_that_does_not_match_the_starts_keeps_them(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([0, 1])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=four_outcomes())
    finish(observer, node)
    history = PipelineObservations(store, "hooks").status(latest=False)
    assert history.height == 6
    ended = history.filter(pl.col("state") != "RUNNING").sort("id")
    assert ended["started_at"].null_count() == 3  # the announced ones: times unknown


def test_starts_of_other_packets_are_not_taken_for_this_end(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    # As many started rows as the end announces, but not the same packets.
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([5, 6, 7])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=four_outcomes())
    finish(observer, node)
    status = PipelineObservations(store, "hooks").status().sort("id")
    assert status["id"].to_list() == [0, 1, 2, 3, 5, 6, 7]
    assert status["state"].to_list() == [
        "SUCCESS",
        "FAILED",
        "SKIPPED",
        "CACHED",
        *["RUNNING"] * 3,
    ]


def test_an_equal_packets_failure_is_explained(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    outcomes = Batch(
        tags([0, 1]),
        codes=np.array([_CODE[RowStatus.FAILED]] * 2, np.int8),
        computed=np.array([True, False]),
        started=np.array([True, False]),
        errors={0: ValueError("boom")},
        captures={0: capture("", "boom")},
    )
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([0])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=outcomes)
    finish(observer, node)
    view = PipelineObservations(store, "hooks")
    status = view.status().sort("id")
    assert status["error_message"].to_list() == ["boom", "an equal packet's call failed"]
    logs = view.logs().sort("id")
    assert logs["error_message"].to_list() == ["boom", "an equal packet's call failed"]
    assert logs["cached"].to_list() == [False, False]


# --------------------------------------------------------------------------- per-packet hooks


def test_per_packet_hooks_record_the_same_rows(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    rows = list(source(4).iter_packets())
    for tag, packet in rows[:3]:  # a batch of three calls starts
        node.on_packet_start(node_label="f", node_hash="pod1:h", tag=tag, packet=packet)
    for (tag, packet), text in zip(rows[:3], ["zero", "one", "two"], strict=True):
        user_only = podline.Tag(tag.as_dict())  # loggers may get tags without system tags
        error = "bad one" if text == "one" else None
        node.create_packet_logger(user_only, packet).record(capture(text, error))
    (t0, p0), (t1, p1), (t2, p2), (t3, p3) = rows
    node.on_packet_end(
        node_label="f", node_hash="pod1:h", tag=t0, input_packet=p0, output_packet=p0, cached=False
    )
    node.on_packet_crash(
        node_label="f", node_hash="pod1:h", tag=t1, packet=p1, error=ValueError("bad one")
    )
    node.on_packet_end(
        node_label="f",
        node_hash="pod1:h",
        tag=t2,
        input_packet=p2,
        output_packet=None,
        cached=False,
    )
    node.on_packet_start(node_label="f", node_hash="pod1:h", tag=t3, packet=p3)
    node.on_packet_end(
        node_label="f", node_hash="pod1:h", tag=t3, input_packet=p3, output_packet=p3, cached=True
    )
    finish(observer, node)
    view = PipelineObservations(store, "hooks")
    status = view.status(latest=False).sort("id")
    assert status["state"].to_list() == ["SUCCESS", "FAILED", "SKIPPED", "CACHED"]
    assert status["error_type"].to_list() == [None, "ValueError", None, None]
    assert status["started_at"].null_count() == 0
    record = next(c for c in status.columns if c.startswith("tag:record_id::"))
    assert status[record].to_list() == ["#0", "#1", "#2", "#3"]
    logs = view.logs().sort("id")
    assert logs["state"].to_list() == ["SUCCESS", "FAILED", "SKIPPED"]
    assert logs["stdout"].to_list() == ["zero", "one", "two"]
    assert logs[record].to_list() == ["#0", "#1", "#2"]  # paired with their started packets


def test_per_packet_captures_of_packets_that_never_end_are_logged(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    (tag, packet), *_ = list(source(1).iter_packets())
    node.on_packet_start(node_label="f", node_hash="pod1:h", tag=tag, packet=packet)
    node.create_packet_logger(tag, packet).record(capture("partial"))
    finish(observer, node)  # the run ends without the packet's end
    view = PipelineObservations(store, "hooks")
    assert view.status()["state"].to_list() == ["RUNNING"]
    logs = view.logs()
    assert logs["state"].to_list() == [None]
    assert logs["stdout"].to_list() == ["partial"]


def test_timestamps_are_utc_microseconds(store: Store) -> None:
    observer = observers(store)
    node = run(observer)
    node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags([0, 1, 2])))
    node.on_packets_end(node_label="f", node_hash="pod1:h", batch=four_outcomes())
    finish(observer, node)
    status = PipelineObservations(store, "hooks").status()
    now = time.time()
    stamps = status["timestamp"].dt.epoch("us").to_list()
    assert all(math.isclose(s / 1e6, now, abs_tol=60) for s in stamps)


@pytest.mark.parametrize("rows", [1, 3, 10])
def test_any_batch_size_records_every_packet(store: Store, rows: int) -> None:
    observer = observers(store, batch_rows=rows, flush_seconds=None)
    node = run(observer)
    for start in range(0, 9, 3):
        ids = list(range(start, start + 3))
        node.on_packets_start(node_label="f", node_hash="pod1:h", batch=Batch(tags(ids)))
        outcomes = Batch(
            tags(ids),
            codes=np.zeros(3, np.int8),
            computed=np.ones(3, bool),
            started=np.ones(3, bool),
            captures={i: capture(str(ids[i])) for i in range(3)},
        )
        node.on_packets_end(node_label="f", node_hash="pod1:h", batch=outcomes)
    finish(observer, node)
    view = PipelineObservations(store, "hooks")
    status = view.status()
    assert sorted(status["id"]) == list(range(9))
    assert set(status["state"]) == {"SUCCESS"}
    assert view.logs()["stdout"].to_list() == [str(i) for i in range(9)]
