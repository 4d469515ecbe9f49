"""``RayExecutor`` on a real local Ray cluster (2 CPUs, started once for the session).

A run on Ray must be indistinguishable from a local run: the same counts, node rows, stored
records and observer hooks on linear, join and diamond pipelines under both orchestrators, and
the same captures (stdout, stderr, log records, the exception and its remote traceback). A
failing or dying call fails its packet alone; cancelling a run or pressing Ctrl-C stops the
remote calls; a cluster podline started leaves no process behind, even after Ctrl-C.
"""

from __future__ import annotations

import _thread
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.functions.test_shared_output_files import grid, train
from tests.pipeline.test_parity import FUNCTIONS, Counting, diamond, linear, rows, stored

import podline
from podline import function_pod
from podline.errors import ExecutorError, OutputFileOverwrittenError, WorkerCrashedError
from podline.executors import CallCapture
from podline.executors.ray import RayExecutor
from podline.functions import RowStatus
from podline.functions.durability import CommitClock
from podline.operators import Join
from podline.pipeline import (
    AsyncPipelineOrchestrator,
    Observer,
    Pipeline,
    SyncPipelineOrchestrator,
)
from podline.stores import DeltaStore, MemoryStore, Store

try:
    import ray
except ImportError:  # as the S3 tests do (tests/services.py): CI requires every service
    _MISSING = "the Ray tests need Ray: pip install 'podline[ray]'"
    if os.environ.get("PODLINE_REQUIRE_SERVICES"):
        pytest.fail(_MISSING, pytrace=False)
    pytest.skip(_MISSING, allow_module_level=True)
pytestmark = pytest.mark.service


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs (and 2 of a custom resource) for the whole session."""
    ray.init(
        num_cpus=2,
        resources={"podline_slot": 2},
        include_dashboard=False,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


# --------------------------------------------------------------------------- pipelines
@function_pod("scaled", live_output=False)
def scale(a: int, c: int) -> int:
    return a * c


def join(store: Store, fn: dict[str, Any]) -> Pipeline:
    numbers = podline.DictSource(
        [{"id": i, "a": i} for i in range(9)], tag_columns=["id"], label="numbers"
    )
    extra = podline.DictSource(
        [{"id": i, "c": 10 * i} for i in range(0, 9, 2)], tag_columns=["id"], label="extra"
    )
    with Pipeline("join", store, observe=False) as pipeline:
        scale.pod(Join()(numbers, extra, label="joined"))
    return pipeline


TOPOLOGIES = {"linear": linear, "join": join, "diamond": diamond}


def _run(store: Store, topology: str, orchestrator: str, executor: Any) -> tuple[Any, ...]:
    built = TOPOLOGIES[topology](store, FUNCTIONS["plain"])
    assert isinstance(built, Pipeline)
    observer = Counting()
    runner = (
        SyncPipelineOrchestrator()
        if orchestrator == "sync"
        else AsyncPipelineOrchestrator(chunk_rows=2, buffer_size=2)
    )
    result = built.run(orchestrator=runner, observer=observer, executor=executor)
    assert built.graph is not None
    tables = {n.label: rows(n.as_table(system_tags=True, source_info=True)) for n in built.graph}
    return result.counts, tables, observer.counts


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("orchestrator", ["sync", "async"])
@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_a_ray_run_equals_a_local_run(tmp_path: Path, topology: str, orchestrator: str) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    local = _run(store.at("local"), topology, orchestrator, None)
    on_ray = _run(store.at("ray"), topology, orchestrator, RayExecutor())
    assert on_ray == local
    assert stored(store.at("ray")) == stored(store.at("local"))
    assert any(counts.computed for counts in local[0].values())  # calls were made
    # A second run on Ray computes nothing: what it stored is what a local run finds.
    again = _run(store.at("local"), topology, orchestrator, RayExecutor())
    assert sum(counts.computed for counts in again[0].values()) == 0
    store.close()


# --------------------------------------------------------------------------- requests
@function_pod("granted", live_output=False)
def granted(a: int) -> str:
    import ray as worker_ray

    assigned = worker_ray.get_runtime_context().get_assigned_resources()
    return json.dumps({"resources": assigned, "env": os.environ.get("PODLINE_RAY_TEST")})


@pytest.mark.usefixtures("local_ray")
def test_resource_requests_and_runtime_env_reach_ray_per_pod() -> None:
    base = RayExecutor()
    asking = base.options(
        num_cpus=0.5,
        memory=64 * 2**20,
        resources={"podline_slot": 1},
        runtime_env={"env_vars": {"PODLINE_RAY_TEST": "yes"}},
    )
    assert asking.max_workers == 2  # two podline_slot, four halves of a CPU
    numbers = podline.DictSource([{"id": i, "a": i} for i in range(4)], tag_columns=["id"])
    with Pipeline("requests", MemoryStore(), observe=False) as pipeline:
        granted.with_options(executor=asking).pod(numbers)
    assert pipeline.run().counts["granted"].computed == 4
    for value in pipeline.granted.as_table().column("granted").to_pylist():
        seen = json.loads(value)
        assert seen["env"] == "yes"
        assert seen["resources"]["CPU"] == 0.5
        assert seen["resources"]["podline_slot"] == 1
        assert seen["resources"]["memory"] == 64 * 2**20


@pytest.mark.usefixtures("local_ray")
def test_requests_the_cluster_cannot_meet_are_named() -> None:
    with pytest.raises(ExecutorError, match=r"GPU=1.*it offers CPU=2"):
        _ = RayExecutor(num_gpus=1).max_workers
    with pytest.raises(ExecutorError, match=r"takes num_cpus.*got cpus"):
        RayExecutor().options(cpus=2)
    assert RayExecutor(num_gpus=1, max_workers=3).max_workers == 3  # waits for resources


# --------------------------------------------------------------------------- capture
@function_pod("said", live_output=False)
def talks(a: int) -> int:
    print(f"out {a}")
    print(f"err {a}", file=sys.stderr)
    logging.getLogger("podline.test.ray").warning("careful with %d", a)
    if a == 3:
        raise ValueError(f"no threes ({a})")
    return a


class Captures(Observer):
    """Keeps every capture a packet logger receives, by the packet's ``a``."""

    def __init__(self) -> None:
        self.seen: dict[int, CallCapture] = {}

    def create_packet_logger(self, tag: Any, packet: Any) -> Any:
        seen, key = self.seen, packet["a"]

        class Logger:
            def record(self, capture: CallCapture) -> None:
                seen[key] = capture

        return Logger()


def _captured(executor: Any) -> tuple[Any, dict[int, CallCapture]]:
    numbers = podline.DictSource([{"id": i, "a": i} for i in range(6)], tag_columns=["id"])
    with Pipeline("talks", MemoryStore(), observe=False) as pipeline:
        talks.pod(numbers)
    observer = Captures()
    counts = pipeline.run(observer=observer, executor=executor).counts["talks"]
    return counts, observer.seen


@pytest.mark.usefixtures("local_ray")
def test_captures_reach_observers_as_with_a_local_executor() -> None:
    local_counts, local = _captured(None)
    ray_counts, remote = _captured(RayExecutor())
    assert ray_counts == local_counts
    assert (ray_counts.computed, ray_counts.failed) == (5, 1)  # one packet fails, alone
    assert sorted(remote) == sorted(local) == list(range(6))
    for a, capture in local.items():
        other = remote[a]
        assert (
            (other.stdout, other.stderr)
            == (capture.stdout, capture.stderr)
            == (
                f"out {a}\n",
                f"err {a}\n",
            )
        )
        assert [(e.level, e.logger, e.message) for e in other.logs] == [
            (e.level, e.logger, e.message) for e in capture.logs
        ]
        assert (other.error_type, other.error_message) == (
            capture.error_type,
            capture.error_message,
        )
        assert other.told
        assert other.start <= other.end
    traceback = remote[3].traceback
    assert traceback is not None
    assert 'raise ValueError(f"no threes ({a})")' in traceback
    assert "in talks" in traceback


@function_pod("lived", live_output=False)
def dies_on_five(a: int) -> int:
    if a == 5:
        os._exit(1)  # the worker process dies, as under the out-of-memory killer
    return a


@pytest.mark.usefixtures("local_ray")
def test_a_call_that_kills_its_worker_fails_alone() -> None:
    numbers = podline.DictSource([{"id": i, "a": i} for i in range(12)], tag_columns=["id"])
    result = dies_on_five.execute(numbers, executor=RayExecutor(), on_error="continue")
    assert result.status.count(RowStatus.COMPUTED) == 11
    assert result.status[5] == RowStatus.FAILED
    assert isinstance(result.errors[5].__cause__, WorkerCrashedError)


@pytest.mark.usefixtures("local_ray")
def test_two_calls_returning_one_file_never_store_or_serve_the_others_content(
    tmp_path: Path,
) -> None:
    """Files are fingerprinted on the Ray worker as each call returns: of two calls writing
    one file, the one whose content the file no longer holds fails (see
    tests/functions/test_shared_output_files.py), run after run."""
    store = MemoryStore()
    for run in range(3):
        result = train.execute(
            grid(tmp_path),
            executor=RayExecutor(),
            result_store=store,
            on_error="continue",
            clock=CommitClock(commit_seconds=600, report_seconds=600),
        )
        for tag, packet in result.stream:  # every row served holds its own call's content
            assert Path(packet["model"]).read_text() == f"alpha={float(tag['row'])}"
        assert {result.status[1], result.status[3]} == {RowStatus.COMPUTED, RowStatus.FAILED}
        failed = 1 if result.status[1] is RowStatus.FAILED else 3
        assert isinstance(result.errors[failed].__cause__, OutputFileOverwrittenError)
        assert result.status[0] is (RowStatus.COMPUTED if run == 0 else RowStatus.CACHED)


@pytest.mark.usefixtures("local_ray")
def test_fail_fast_sends_no_task_after_the_failure_and_stores_the_tasks_sent(
    tmp_path: Path,
) -> None:
    """The tasks already sent finish and are stored (they run anyway); none is sent after."""
    from tests.pipeline.test_fail_fast import FAILING, ROWS, _called, _pipeline

    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "pause").write_text("0.005")
    with pytest.raises(podline.FunctionCallError, match="x == 3"):
        _pipeline(tmp_path / "store", calls).run(executor=RayExecutor(), error_policy="fail_fast")
    called = _called(calls)
    assert FAILING in called
    assert len(called) <= ROWS // 2, len(called)
    result = _pipeline(tmp_path / "store", calls).run()
    assert result.counts["noted"].cached == len(called) - 1


# --------------------------------------------------------------------------- cancellation
@function_pod("slept", live_output=False)
def sleeps(a: int, log: str) -> int:
    with open(log, "a") as out:
        out.write(f"start {a} {time.time()}\n")
    for _ in range(40):  # 2 s, in steps a cancellation interrupts
        time.sleep(0.05)
    with open(log, "a") as out:
        out.write(f"end {a} {time.time()}\n")
    return a


def _slow_pipeline(log: Path) -> Pipeline:
    source = podline.DictSource(
        [{"id": i, "a": i, "log": str(log)} for i in range(40)], tag_columns=["id"]
    )
    with Pipeline("slow", MemoryStore(), observe=False) as pipeline:
        sleeps.pod(source)
    return pipeline


def _events(log: Path) -> list[tuple[str, int, float]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(kind, int(a), float(at)) for kind, a, at in (line.split() for line in lines)]


def _check_stopped(log: Path, stopped: float) -> None:
    """Calls running when the run stopped were interrupted: none ends after it."""
    time.sleep(2.5)  # longer than a call: a call left running would have ended by now
    events = _events(log)
    ended = {a for kind, a, _ in events if kind == "end"}
    assert [a for kind, a, at in events if kind == "end" and at > stopped + 0.3] == []
    assert {a for kind, a, _ in events if kind == "start"} - ended  # some were interrupted
    assert len(ended) < 40


@pytest.mark.usefixtures("local_ray")
def test_cancelling_an_async_run_stops_the_remote_calls(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    pipeline = _slow_pipeline(log)
    graph = pipeline.graph
    assert graph is not None

    async def cancel_when_running() -> float:
        orchestrator = AsyncPipelineOrchestrator()
        task = asyncio.create_task(orchestrator.run_async(graph, executor=RayExecutor()))
        while not any(kind == "start" for kind, _, _ in _events(log)):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        stopped = time.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.time() - stopped < 1.5  # not waiting for the calls to end
        return stopped

    _check_stopped(log, asyncio.run(cancel_when_running()))


@pytest.mark.usefixtures("local_ray", "python_sigint")
def test_ctrl_c_in_a_sync_run_stops_the_remote_calls(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    pipeline = _slow_pipeline(log)
    pressed: list[float] = []

    def press_ctrl_c() -> None:
        while not any(kind == "start" for kind, _, _ in _events(log)):
            time.sleep(0.02)
        time.sleep(0.2)
        pressed.append(time.time())
        _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(executor=RayExecutor())
    presser.join()
    assert time.time() - pressed[0] < 1.5
    _check_stopped(log, pressed[0])


# --------------------------------------------------------------------------- processes
_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import podline
    from podline import function_pod
    from podline.executors.ray import RayExecutor
    from podline.pipeline import Pipeline
    from podline.stores import MemoryStore

    def cluster_processes():
        parents = {}
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (ValueError, OSError):
                continue
        found, todo = set(), [os.getpid()]
        while todo:
            parent = todo.pop()
            children = [p for p, pp in parents.items() if pp == parent and p not in found]
            found.update(children)
            todo += children
        return sorted(found)

    PAUSE = float(sys.argv[2])  # shipped with the function, which reads it

    @function_pod("y", live_output=False)
    def slow(a: int) -> int:
        time.sleep(PAUSE)
        return a

    source = podline.DictSource([{"id": i, "a": i} for i in range(40)], tag_columns=["id"])
    with Pipeline("p", MemoryStore(), observe=False) as pipeline:
        slow.pod(source)
    with RayExecutor(init={"num_cpus": 1}) as executor:
        executor.max_workers  # connects: a local cluster starts
        print(json.dumps(cluster_processes()), flush=True)
        pipeline.run(executor=executor)
    import ray
    print(json.dumps({"connected": ray.is_initialized()}), flush=True)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pids: list[int], seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("ending", ["closed", "ctrl_c"])
def test_a_cluster_podline_started_leaves_no_process_behind(tmp_path: Path, ending: str) -> None:
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    pause = "0.01" if ending == "closed" else "0.5"
    process = subprocess.Popen(
        [sys.executable, str(script), "-", pause],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    try:
        pids = json.loads(process.stdout.readline())
        names = {Path(f"/proc/{p}/exe").resolve().name for p in pids if _alive(p)}
        assert {"raylet", "gcs_server"} <= names
        if ending == "ctrl_c":
            time.sleep(1.0)  # into the run
            process.send_signal(signal.SIGINT)
            assert process.wait(60) != 0
        else:
            assert json.loads(process.stdout.readline()) == {"connected": False}
            assert _gone(pids) == []  # shut down when the executor closed, not at exit
            assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _gone(pids) == []


@pytest.mark.usefixtures("local_ray")
def test_a_function_the_workers_cannot_import_is_named(tmp_path: Path) -> None:
    # A module on the driver's path only (added after the cluster started): cloudpickle ships
    # its function by reference, and the workers cannot import it.
    (tmp_path / "driver_only.py").write_text("def f(a):\n    return a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import driver_only  # type: ignore[import-not-found]

        with pytest.raises(ExecutorError, match=r"ModuleNotFoundError.*importable on the cluster"):
            list(RayExecutor().execute(driver_only.f, [(1,)]))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("driver_only", None)


_SHUTDOWN_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import ray
    import podline
    from podline.executors.ray import RayExecutor
    from podline.pipeline import Pipeline
    from podline.stores import DeltaStore

    @podline.function_pod("y", live_output=False)
    def slow(x: int) -> int:
        time.sleep(0.1)
        return x * x

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    store = DeltaStore(sys.argv[1])
    with Pipeline("shut", store) as pipeline:
        slow.pod(podline.DictSource([{"k": i, "x": i} for i in range(200)], tag_columns=["k"]))
    threading.Timer(3, ray.shutdown).start()  # the program ends Ray mid-run
    try:
        pipeline.run(executor=RayExecutor())
        raised = None
    except BaseException as error:
        raised = [type(error).__name__, str(error)]
    table = pipeline.slow.as_table()
    right = all(y == k * k for k, y in zip(table["k"].to_pylist(), table["y"].to_pylist()))
    print(json.dumps({"raised": raised, "right": right}), flush=True)
    """
)


def test_ray_shut_down_mid_run_is_an_executor_error(tmp_path: Path) -> None:
    # Ray fails its calls once shut down with SystemExit(0) (a program exiting as if it had
    # succeeded) or errors about objects without an owner; a fault test saw a bare
    # "TypeError: No owner found for object." raised from the run.
    script = tmp_path / "run.py"
    script.write_text(_SHUTDOWN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store")],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["raised"][0] == "ExecutorError", outcome
    assert "the connection to Ray ended while calls were running" in outcome["raised"][1]
    assert outcome["right"]
