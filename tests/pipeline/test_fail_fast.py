"""``error_policy="fail_fast"`` stops at the first failing call: no call starts after it (a
node hands its executor up to 8,192 calls at once, and all of them used to run), what
finished before it is stored, recorded and reported, and its ``FunctionCallError`` is what
the run raises. Sync and async orchestrators; in-process, thread and process executors."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

import podline
from podline import DictSource, function_pod
from podline.executors import LocalExecutor, ProcessExecutor, ThreadExecutor
from podline.pipeline import Pipeline
from podline.stores import DeltaStore

ROWS = 600
FAILING = 3


@function_pod("y")
def noted(x: int, calls: str) -> int:
    # Each call leaves a file: the calls that ran, whichever process ran them; a "pause"
    # file there makes calls take that long (a process pool's chunks then hold fewer).
    Path(calls, str(x)).touch()
    pause = Path(calls, "pause")
    if pause.exists():
        time.sleep(float(pause.read_text()))
    if x == FAILING:
        raise ValueError(f"x == {x}")
    return x * 10


def _pipeline(root: Path, calls: Path) -> Pipeline:
    rows = [{"k": i, "x": i, "calls": str(calls)} for i in range(ROWS)]
    with Pipeline("p", store=DeltaStore(root)) as pipeline:
        noted.pod(DictSource(rows, tag_columns=["k"], label="rows"))
    return pipeline


def _called(calls: Path) -> set[int]:
    return {int(name) for name in os.listdir(calls) if name != "pause"}


@pytest.mark.parametrize(
    ("executor", "orchestrator", "most"),
    [
        (LocalExecutor, "sync", FAILING + 1),
        (LocalExecutor, "async", FAILING + 1),
        (lambda: ThreadExecutor(2), "sync", FAILING + 8),
        # A chunk's failure is known when the chunk ends; those sent meanwhile still run
        # (here 57 to 229 of 600 calls, by the calls' length; all 600 before).
        (lambda: ProcessExecutor(2), "sync", ROWS // 2),
    ],
    ids=["local", "local-async", "threads", "processes"],
)
def test_no_call_starts_after_the_first_failure(
    tmp_path: Path, executor: Any, orchestrator: str, most: int
) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "pause").write_text("0.005")
    pipeline = _pipeline(tmp_path / "store", calls)
    with pytest.raises(podline.FunctionCallError, match=r"x == 3") as raised:
        pipeline.run(orchestrator, executor=executor(), error_policy="fail_fast")
    assert "'k': 3" in str(raised.value)
    assert isinstance(raised.value.__cause__, ValueError)
    called = _called(calls)
    assert FAILING in called
    # Calls already started may finish; none after them (the pools start a few at once).
    assert len(called) <= most, sorted(called)
    # What finished is stored: a run that goes on computes none of it again.
    for name in os.listdir(calls):
        os.remove(calls / name)
    again = _pipeline(tmp_path / "store", calls)
    result = again.run(executor=LocalExecutor())
    counts = result.counts["noted"]
    assert counts.failed == 1
    assert counts.cached == len(called) - 1
    assert _called(calls) == set(range(ROWS)) - called | {FAILING}
    assert sorted(again.nodes["noted"].as_table().column("y").to_pylist()) == sorted(
        x * 10 for x in range(ROWS) if x != FAILING
    )


def test_the_failing_call_and_those_before_it_are_in_status_and_records(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "pause").write_text("0.005")
    pipeline = _pipeline(tmp_path / "store", calls)
    with pytest.raises(podline.FunctionCallError):
        pipeline.run(error_policy="fail_fast")
    status = pipeline.status("noted")
    states = dict(zip(status["k"].to_list(), status["state"].to_list(), strict=True))
    assert [states.pop(k) for k in range(FAILING + 1)] == ["SUCCESS"] * FAILING + ["FAILED"]
    # Calls never started keep the RUNNING row their batch began with: where the run stopped.
    assert set(states.values()) == {"RUNNING"}
    assert pipeline.runs()["unfinished"].to_list()[-1] == ROWS - FAILING - 1
    fresh = _pipeline(tmp_path / "store", calls)
    assert sorted(fresh.nodes["noted"].as_table().column("k").to_pylist()) == [0, 1, 2]


@function_pod("y")
async def noted_async(x: int, calls: str) -> int:
    Path(calls, str(x)).touch()
    await asyncio.sleep(0.005)
    if x == FAILING:
        raise ValueError(f"x == {x}")
    return x * 10


@pytest.mark.parametrize(
    ("orchestrator", "most"),
    # Awaited one at a time (sync), or up to 32 at once (the async orchestrator's default for
    # async functions): the calls started before the failure is seen still finish.
    [("sync", FAILING + 3), ("async", 100)],
)
def test_async_functions_stop_at_the_first_failure_too(
    tmp_path: Path, orchestrator: str, most: int
) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    rows = [{"k": i, "x": i, "calls": str(calls)} for i in range(ROWS)]
    with Pipeline("p", store=DeltaStore(tmp_path / "store")) as pipeline:
        noted_async.pod(DictSource(rows, tag_columns=["k"], label="rows"))
    with pytest.raises(podline.FunctionCallError, match=r"x == 3"):
        pipeline.run(orchestrator, error_policy="fail_fast")
    called = _called(calls)
    assert FAILING in called
    assert len(called) <= most, sorted(called)
    result = pipeline.run("async")
    assert result.counts["noted_async"].cached == len(called) - 1
