"""ProgressObserver: bars count computed, cached, skipped and failed packets per function node;
auto-detection turns them off in CI and when the output is not a terminal."""

from __future__ import annotations

import io
import os
import re
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import pytest

import podline
from podline import SKIP, function_pod
from podline.observability.progress import ProgressObserver, progress_enabled
from podline.pipeline import NoOpObserver, Pipeline
from podline.stores import MemoryStore

COUNTS = re.compile(r"computed=(\d+) cached=(\d+) skipped=(\d+) failed=(\d+)")


@function_pod("y", live_output=False)
def picky(a: int) -> int:
    """Computes most rows, skips one, fails on one."""
    if a == 1:
        raise ValueError("a == 1")
    if a == 2:
        return SKIP
    return 10 * a


@function_pod("z", live_output=False)
def plus_one(y: int) -> int:
    return y + 1


def build(n: int = 6) -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(n)]
    source = podline.DictSource(rows, tag_columns=["id"], label="numbers")
    with Pipeline("progress", MemoryStore()) as pipeline:
        plus_one.pod(picky.pod(source))
    return pipeline


def final_states(text: str) -> dict[str, tuple[int, ...]]:
    """The last drawn counts of every bar, by node label."""
    states: dict[str, tuple[int, ...]] = {}
    for segment in re.split(r"[\r\n]", text):
        found = COUNTS.search(segment)
        if found:
            label = segment.split(":", 1)[0].strip()
            states[label] = tuple(int(g) for g in found.groups())
    return states


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize("backend", ["tqdm", "plain"])
def test_counts_match_the_run(backend: Any) -> None:
    pipeline = build()
    out = io.StringIO()
    result = pipeline.run(observer=ProgressObserver(file=out, backend=backend))
    states = final_states(out.getvalue())
    # One bar per function node; the source node reports no packets and gets none.
    assert set(states) == {"picky", "plus_one"}
    for label, (computed, cached, skipped, failed) in states.items():
        counts = result.counts[label]
        assert (computed, cached, skipped, failed) == (
            counts.computed,
            counts.cached,
            counts.skipped,
            counts.failed,
        )
    assert states["picky"] == (4, 0, 1, 1)
    assert states["plus_one"] == (4, 0, 0, 0)

    again = io.StringIO()
    pipeline.run(observer=ProgressObserver(file=again, backend=backend))
    # Remembered skips stay skips; remembered outputs are cached; the failure is retried.
    assert final_states(again.getvalue()) == {"picky": (0, 4, 1, 1), "plus_one": (0, 4, 0, 0)}


def test_tqdm_bar_shows_rate_and_ends_with_one_line_per_node() -> None:
    out = io.StringIO()
    build().run(observer=ProgressObserver(file=out, backend="tqdm"))
    lines = out.getvalue().rstrip("\n").split("\n")  # not splitlines(): it splits at \r
    assert len(lines) == 2
    # The orchestrator announces each function node's total: a percentage and an ETA.
    assert lines[0].rsplit("\r", 1)[-1].startswith("picky: 100%|")
    assert " 6/6 [" in lines[0]
    assert "packets/s" in lines[0]


def test_plain_backend_writes_one_summary_line_per_node() -> None:
    out = io.StringIO()
    build().run(observer=ProgressObserver(file=out, backend="plain"))
    lines = out.getvalue().rstrip("\n").split("\n")
    assert [line.split(":")[0] for line in lines] == ["picky", "plus_one"]
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("picky: 6 packets in ")
    assert lines[0].endswith("computed=4 cached=0 skipped=1 failed=1")


def test_cached_work_is_drawn_in_bulk() -> None:
    pipeline = build(2000)
    pipeline.run(observer=NoOpObserver())  # warm the memo, observing nothing
    out = io.StringIO()
    # A long refresh interval: only the opening and closing draws can happen.
    pipeline.run(observer=ProgressObserver(file=out, backend="tqdm", refresh_seconds=60))
    text = out.getvalue()
    assert final_states(text) == {"picky": (0, 1998, 1, 1), "plus_one": (0, 1998, 0, 0)}
    # Two draws per node (open and close) for 2,000 packets each, and no line per packet.
    assert text.count("\r") == 4
    assert text.count("\n") == 2


def test_total_from_node_start_gives_percent_and_opens_the_bar_at_once() -> None:
    out = io.StringIO()
    observer = ProgressObserver(file=out, backend="tqdm", refresh_seconds=60)
    node = observer.contextualize("work", "p", "c")
    node.on_node_start(node_label="work", node_hash="h", tag_schema=podline.Schema({}), total=4)
    assert "0/4" in out.getvalue()  # open before the first packet
    for cached in (False, True, True):
        node.on_packet_end(
            node_label="work",
            node_hash="h",
            tag=None,
            input_packet=None,
            output_packet=object(),
            cached=cached,
        )
    node.on_packet_crash(node_label="work", node_hash="h", tag=None, packet=None, error=None)
    node.on_node_end(node_label="work", node_hash="h")
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "100%" in last
    assert "4/4" in last
    assert final_states(out.getvalue()) == {"work": (1, 2, 0, 1)}


def test_hooks_reaching_the_observer_itself_are_routed_by_label() -> None:
    out = io.StringIO()
    observer = ProgressObserver(file=out, backend="plain")
    observer.on_run_start(run_id="r", pipeline_uri="u")
    for label in ("a", "b", "a"):
        observer.on_packet_end(node_label=label, output_packet=None, cached=False)
    observer.on_node_end(node_label="a", node_hash="h")
    observer.on_run_end(run_id="r")
    assert final_states(out.getvalue()) == {"a": (0, 0, 2, 0), "b": (0, 0, 1, 0)}


def test_a_node_that_raises_still_gets_its_final_counts() -> None:
    pipeline = build()
    out = io.StringIO()
    with pytest.raises(podline.FunctionCallError):
        pipeline.run(error_policy="fail_fast", observer=ProgressObserver(file=out))
    # No on_node_end for the failing node: on_run_end closes its bar. No call starts after
    # the failing one (a == 1): row 0 computed, row 1 failed, rows 2 to 5 never run.
    assert final_states(out.getvalue()) == {"picky": (1, 0, 0, 1)}


def test_running_calls_are_shown_and_bars_are_redrawn_while_a_node_works(
    eventually: Callable[..., bool],
) -> None:
    out = FakeTTY()
    observer = ProgressObserver(file=out, backend="tqdm", refresh_seconds=0.01)
    node = observer.contextualize("slow", "p", "c")
    node.on_node_start(node_label="slow", node_hash="h", tag_schema=podline.Schema({}))
    for _ in range(3):
        node.on_packet_start(node_label="slow", node_hash="h", tag=None, packet=None)
    # Redrawn by the refresher, not by the hooks (which only count); on a terminal it keeps
    # redrawing with nothing new, so the elapsed time shows the node is alive.
    assert eventually(lambda: out.getvalue().count("\r") > 5)
    assert "running=3" in out.getvalue()
    node.on_node_end(node_label="slow", node_hash="h")
    assert eventually(lambda: observer._thread is None)  # nothing open: the refresher stops


def test_a_file_is_redrawn_only_when_counts_change(eventually: Callable[..., bool]) -> None:
    out = io.StringIO()
    observer = ProgressObserver(file=out, backend="tqdm", refresh_seconds=0.01)
    node = observer.contextualize("slow", "p", "c")
    node.on_packet_start(node_label="slow", node_hash="h", tag=None, packet=None)
    node.on_packet_start(node_label="slow", node_hash="h", tag=None, packet=None)
    assert eventually(lambda: "running=2" in out.getvalue())
    drawn = out.getvalue()
    time.sleep(0.1)  # ten refresh intervals with nothing new
    assert out.getvalue() == drawn
    node.on_node_end(node_label="slow", node_hash="h")


# --------------------------------------------------------------------------- enabling


def test_progress_enabled_follows_tty_ci_and_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert progress_enabled(FakeTTY()) is True
    assert progress_enabled(io.StringIO()) is False  # piped or redirected
    monkeypatch.setenv("CI", "true")
    assert progress_enabled(FakeTTY()) is False
    monkeypatch.setenv("CI", "false")
    assert progress_enabled(FakeTTY()) is True

    class ZMQInteractiveShell:
        pass

    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a kernel's stderr is no TTY
    assert progress_enabled() is True
    assert progress_enabled(io.StringIO()) is False  # an explicit buffer is not the notebook
    monkeypatch.setenv("CI", "1")
    assert progress_enabled() is False


def test_off_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    fake_stderr = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake_stderr)
    observer = ProgressObserver()
    assert observer.enabled is False
    # Disabled: nodes need not build packet objects, and nothing is drawn.
    assert observer.observes_packets is False
    build().run(observer=observer)
    assert fake_stderr.getvalue() == ""


def test_off_when_not_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    observer = ProgressObserver()
    assert observer.enabled is False
    build().run(observer=observer)
    assert piped.getvalue() == ""


def test_on_for_a_terminal_and_for_an_explicit_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    assert ProgressObserver().enabled is True
    monkeypatch.setenv("CI", "true")
    assert ProgressObserver(file=io.StringIO()).enabled is True
    assert ProgressObserver(file=io.StringIO(), enabled=False).enabled is False


def test_falls_back_to_plain_lines_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    out = io.StringIO()
    observer = ProgressObserver(file=out)
    assert observer.backend == "plain"
    build().run(observer=observer)
    assert final_states(out.getvalue()) == {"picky": (4, 0, 1, 1), "plus_one": (4, 0, 0, 0)}


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        ProgressObserver(backend="rich")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refresh_seconds"):
        ProgressObserver(refresh_seconds=0)


def test_pipelines_draw_progress_by_default_only_where_someone_watches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    build().run()  # the default observer: status, logs and, on a terminal, progress
    assert "picky" in terminal.getvalue()
    assert "plus_one" in terminal.getvalue()

    monkeypatch.setenv("CI", "true")
    quiet = FakeTTY()
    monkeypatch.setattr(sys, "stderr", quiet)
    pipeline = build()
    assert not any(
        isinstance(o, ProgressObserver)
        for o in pipeline.default_observer().observers  # type: ignore[attr-defined]
    )
    pipeline.run()
    assert quiet.getvalue() == ""


def _read_all(fd: int) -> bytes:
    """Everything written to a pseudo-terminal so far: one read may return only part of it
    (the kernel hands it over in pieces, more so on a loaded machine)."""
    import select

    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_terminal_that_reports_no_size_still_gets_bars() -> None:
    # A fresh pseudo-terminal reports 0 columns and 0 lines (as some CI ptys and `script`
    # do); tqdm sizing its bars to that screen drew empty lines.
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            build().run(observer=ProgressObserver(file=terminal, backend="tqdm"))
            terminal.flush()
        drawn = _read_all(leader).decode(errors="replace")
    finally:
        os.close(leader)
        os.close(follower)
    assert final_states(drawn) == {"picky": (4, 0, 1, 1), "plus_one": (4, 0, 0, 0)}


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_bars_advance_as_slow_calls_finish(orchestrator: str) -> None:
    # 600 calls of 4 ms in one batch: the bar used to stay at 0/600 until all were done.
    @function_pod("y", live_output=False)
    def slow(a: int) -> int:
        time.sleep(0.004)
        return a

    terminal = FakeTTY()
    rows = [{"id": i, "a": i} for i in range(600)]
    with Pipeline("slow_bars", MemoryStore(), observe=False) as pipeline:
        slow.pod(podline.DictSource(rows, tag_columns=["id"]))
    pipeline.run(
        orchestrator=orchestrator, observer=ProgressObserver(file=terminal, backend="tqdm")
    )
    computed = {
        int(found.group(1))
        for segment in re.split(r"[\r\n]", terminal.getvalue())
        if segment.strip().startswith("slow:") and (found := COUNTS.search(segment))
    }
    assert computed & set(range(1, 600)), sorted(computed)  # a count between none and all
    assert max(computed) == 600


@pytest.mark.parametrize("progress", [True, False])
def test_run_progress_draws_bars_beside_the_recorded_status(
    progress: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run(progress=...)`` turns bars on or off and keeps the default status and logs
    (``observer=ProgressObserver()`` replaces them)."""
    monkeypatch.setenv("CI", "1")  # bars would be off by themselves
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    pipeline = build()
    result = pipeline.run(progress=progress)
    drawn = final_states(err.getvalue())
    assert drawn == ({"picky": (4, 0, 1, 1), "plus_one": (4, 0, 0, 0)} if progress else {})
    assert result.failure_logs.startswith("pipeline.logs(state='FAILED'")
    assert pipeline.status(state="FAILED")["id"].to_list() == [1]
