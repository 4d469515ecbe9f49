"""Two calls returning one output file: the file holds what one of them wrote, so the other's
result would name content that is not its own (user test: a grid with a duplicated config name
wrote one model file for two configs).

Each call's files are fingerprinted where it ran, as soon as it returned; a row whose file was
overwritten by another call since then fails with ``OutputFileOverwrittenError`` instead of
being stored, and a stored result whose file a later call overwrote is not served. Whatever the
executor, no run ever serves a row whose file holds another call's content.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import podline
from podline import function_pod
from podline.errors import FunctionCallError, OutputFileOverwrittenError
from podline.executors import (
    CallCapture,
    CallOutcome,
    CallPolicy,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from podline.executors.base import DEFAULT_POLICY, Calls
from podline.executors.capture import CallArguments
from podline.functions import FunctionPod, PodResult, RowStatus, SharedOutputFileWarning
from podline.functions.durability import CommitClock
from podline.pipeline import OrchestratorResult, Pipeline
from podline.stores import MemoryStore

#: Names of a grid whose rows 1 and 3 share a name, so their calls write one file.
GRID = ["c1", "c2", "c3", "c2"]


@function_pod("model")
def train(alpha: float, name: str, out: str) -> Path:
    # Later rows write later: calls running side by side never write the file within the
    # instant between another's write and its fingerprint (the window decision 93 leaves).
    time.sleep(alpha * 0.05)
    path = Path(out, f"{name}.txt")
    path.write_text(f"alpha={alpha}")
    return path


@function_pod("model")
async def train_async(alpha: float, name: str, out: str) -> Path:
    await asyncio.sleep(alpha * 0.05)
    path = Path(out, f"{name}.txt")
    path.write_text(f"alpha={alpha}")  # (no await between the write and the return)
    return path


@function_pod("content")
def read(model: Path) -> str:
    return model.read_text()


def grid(out: Path, names: list[str] = GRID) -> podline.Source:
    rows = [
        {"row": i, "alpha": float(i), "name": name, "out": str(out)} for i, name in enumerate(names)
    ]
    return podline.DictSource(rows, tag_columns=["row"], source_id="grid")


def _assert_own_content(result: PodResult) -> None:
    """Every row the result serves names a file holding what its own arguments write."""
    for tag, packet in result.stream:
        assert Path(packet["model"]).read_text() == f"alpha={float(tag['row'])}", tag


def _overwritten(result: PodResult, row: int) -> OutputFileOverwrittenError:
    error = result.errors[row]
    assert isinstance(error, FunctionCallError)
    assert isinstance(error.__cause__, OutputFileOverwrittenError)
    return error.__cause__


@pytest.fixture
def processes() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(2) as executor:
        yield executor


EXECUTORS: dict[str, Callable[[pytest.FixtureRequest], tuple[FunctionPod, Executor]]] = {
    "local": lambda request: (train, LocalExecutor()),
    "threads": lambda request: (train, ThreadExecutor(2)),
    "processes": lambda request: (train, request.getfixturevalue("processes")),
    "async": lambda request: (train_async, LocalExecutor()),
    "async-threads": lambda request: (train_async, ThreadExecutor(4)),
}


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_a_duplicated_name_fails_the_overwritten_row_and_never_serves_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pod, executor = EXECUTORS[kind](request)
    store = MemoryStore()
    shared = str(tmp_path / "c2.txt")

    def run() -> PodResult:
        # One durability window: the calls are checked together when they are stored.
        clock = CommitClock(commit_seconds=600, report_seconds=600)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SharedOutputFileWarning)
            return pod.execute(
                grid(tmp_path),
                executor=executor,
                result_store=store,
                on_error="continue",
                clock=clock,
            )

    first = run()
    # Calls running side by side may write in either order: the one whose content the
    # file does not hold fails (row 1, when calls run one after another).
    lost = 1 if first.status[1] is RowStatus.FAILED else 3
    if kind in ("local", "async"):
        assert lost == 1
    won = 4 - lost
    assert first.status[won] is RowStatus.COMPUTED
    assert first.status[0] is first.status[2] is RowStatus.COMPUTED
    message = str(_overwritten(first, lost))
    assert message.startswith(
        f"{pod.packet_function.name}: the file {shared!r} that the call of the row with tags "
        f"{{'row': {lost}}} returned no longer holds what that call wrote: the call of the row "
        f"with tags {{'row': {won}}} (which returned it too) wrote it since, so this row's "
        "result was not stored; give each call a file of its own"
    )
    _assert_own_content(first)
    # Run again, and again: the rows sharing the file take turns to be computed (the other
    # then fails), but no row is ever served with the other's content.
    for _ in range(3):
        again = run()
        _assert_own_content(again)
        assert again.status[0] is again.status[2] is RowStatus.CACHED
        assert {again.status[1], again.status[3]} == {RowStatus.COMPUTED, RowStatus.FAILED}
        failed = 1 if again.status[1] is RowStatus.FAILED else 3
        assert "stored result was not served" in str(_overwritten(again, failed))


def test_a_pipeline_never_passes_another_calls_file_downstream(tmp_path: Path) -> None:
    store = MemoryStore()
    for run in range(3):
        with Pipeline("grid", store=store) as pipeline:
            model = train.pod(grid(tmp_path), label="train")
            read.pod(model, label="read")
        result = pipeline.run()
        counts = result.counts["train"]
        assert counts.failed == 1, counts
        assert counts.computed == (3 if run == 0 else 1), counts
        for row in pipeline.read.as_table().to_pylist():
            assert row["content"] == f"alpha={float(row['row'])}", row


def test_a_file_shared_with_a_stored_result_warns_and_that_result_is_computed_again(
    tmp_path: Path,
) -> None:
    """A call of an earlier window was stored before the duplicate came: the run warns, and
    that result, whose fingerprint no longer matches its file, is not served again."""
    store = MemoryStore()

    def run() -> PodResult:
        # Every call its own window: each is stored before the next one ends.
        clock = CommitClock(commit_seconds=1e-6)
        return train.execute(grid(tmp_path), result_store=store, on_error="continue", clock=clock)

    with pytest.warns(SharedOutputFileWarning) as caught:
        first = run()
    (warning,) = caught
    assert str(warning.message).startswith(
        "train: the calls of the rows with tags {'row': 1} and {'row': 3} both returned the "
        f"file {str(tmp_path / 'c2.txt')!r}, with different content"
    )
    assert [s.value for s in first.status] == ["computed"] * 4
    second = run()
    assert second.status[1] is RowStatus.COMPUTED  # not served: its file changed
    assert second.reasons[1].startswith("output file changed")
    assert second.status[3] is RowStatus.FAILED  # served, it would name row 1's content
    _assert_own_content(second)


def test_an_input_file_passed_through_by_many_calls_is_fine(tmp_path: Path) -> None:
    @function_pod("kept")
    def keep(source: Path, k: int) -> Path:
        return source

    data = tmp_path / "data.txt"
    data.write_text("the same for every call")
    rows = [{"k": k, "source": data} for k in range(4)]
    store = MemoryStore()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedOutputFileWarning)
        for expected in ("computed", "cached"):
            result = keep.execute(podline.DictSource(rows, tag_columns=["k"]), result_store=store)
            assert [s.value for s in result.status] == [expected] * 4


def test_calls_writing_the_same_content_to_one_file_are_fine(tmp_path: Path) -> None:
    @function_pod("model")
    def by_name(alpha: float, name: str, out: str) -> Path:
        path = Path(out, f"{name}.txt")
        path.write_text(name)  # what it writes depends on the name alone
        return path

    reference = tmp_path / "reference.txt"
    reference.write_text("shared")

    @function_pod("reference")
    def not_written(alpha: float) -> Path:
        return reference  # a file the function did not write

    store = MemoryStore()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedOutputFileWarning)
        for expected in ("computed", "cached"):
            result = by_name.execute(grid(tmp_path), result_store=store)
            assert [s.value for s in result.status] == [expected] * 4
            result = not_written.execute(grid(tmp_path), result_store=store)
            assert [s.value for s in result.status] == [expected] * 4


def test_a_file_of_its_own_per_call_is_fine(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedOutputFileWarning)
        result = train.execute(grid(tmp_path, ["c1", "c2", "c3"]), result_store=MemoryStore())
    assert [s.value for s in result.status] == ["computed"] * 3


def test_a_file_shared_across_a_nodes_batches_warns_and_is_never_served_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows 0 and 2 share a file, in two batches of the node (separate executions): the
    second warns; the next run computes row 0 again and does not serve row 2's result."""
    from podline.nodes import kinds

    monkeypatch.setattr(kinds, "NODE_BATCH", 2)
    store = MemoryStore()
    source = grid(tmp_path, ["c2", "c1", "c2", "c3"])

    def run() -> OrchestratorResult:
        with Pipeline("grid", store=store) as pipeline:
            model = train.pod(source, label="train")
            read.pod(model, label="read")
        result = pipeline.run()
        for row in pipeline.read.as_table().to_pylist():
            contents[row["row"]] = row["content"]
        return result

    contents: dict[int, str] = {}
    with pytest.warns(SharedOutputFileWarning, match="a call of an earlier batch"):
        run()
    contents.clear()
    again = run()
    assert again.counts["train"].computed == 1  # row 0: its file changed
    assert again.counts["train"].failed == 1  # row 2: served, it would name row 0's content
    assert contents == {0: "alpha=0.0", 1: "alpha=1.0", 3: "alpha=3.0"}


class _Bare:
    """An executor that makes its outcomes itself, without ``run_captured``: no fingerprints
    come back with them."""

    max_workers = 1

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        for index, call in enumerate(arguments):
            value = fn(*call) if isinstance(call, tuple) else fn(**call)
            yield index, CallOutcome(value, None, CallCapture())


def test_an_executor_that_takes_no_fingerprints_has_them_taken_when_calls_are_stored(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    names = ["c1", "c2", "c3"]
    first = train.execute(grid(tmp_path, names), executor=_Bare(), result_store=store)
    assert [s.value for s in first.status] == ["computed"] * 3
    assert [s.value for s in train.execute(grid(tmp_path, names), result_store=store).status] == [
        "cached"
    ] * 3
    (tmp_path / "c2.txt").write_text("edited")
    again = train.execute(grid(tmp_path, names), result_store=store)
    assert [s.value for s in again.status] == ["cached", "computed", "cached"]
    _assert_own_content(again)
