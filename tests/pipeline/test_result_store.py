"""``Pipeline(name, store, result_store=...)``: function results and code records in one store,
everything else of a pipeline in its own. Two pipelines sharing a result store (the second
computes nothing; its records, status and runs stay in its store), on mixed backends and
orchestrators; what lands where; plan, explain and invalidate across the two stores; output
files; records whose results are gone; a process killed between the two commits; and the
layout with one store, which must not change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from tests.stores.conftest import run_script, script_file

import podline
from conftest import ModuleTree
from podline import function_pod
from podline.executors import ProcessExecutor
from podline.nodes.records import RESULT_ID
from podline.observability import ObservationWarning
from podline.pipeline import Pipeline, Plan
from podline.stores import RECORD_ID, DeltaStore, MemoryStore, Store


@function_pod("y")
def square(x: int) -> int:
    return x * x


@function_pod("label")
def describe(y: int) -> str:
    return f"v{y}"


def build(name: str, store: Store, result_store: Store | None, n: int = 3) -> Pipeline:
    rows = [{"k": i, "x": i} for i in range(n)]
    source = podline.DictSource(rows, tag_columns=["k"], source_id="numbers")
    with Pipeline(name, store, result_store=result_store) as pipeline:
        describe.pod(square.pod(source))
    return pipeline


def delta(path: Path) -> DeltaStore:
    return DeltaStore(path, flush_seconds=None)


def labels(pipeline: Pipeline) -> list[str]:
    return sorted(pipeline.describe.as_table().column("label").to_pylist())


def assert_apart(results: Store, stores: dict[str, Store]) -> None:
    """The result store holds the memo and code records only; each pipeline's store holds
    its own pipeline's tables only."""
    held = results.list()
    assert ("code",) in held
    assert {p[:3] for p in held if p != ("code",)} == {
        ("results", "functions", "square"),
        ("results", "functions", "describe"),
    }
    for name, store in stores.items():
        paths = store.list()
        assert paths, name
        assert {p[:2] for p in paths} == {("pipelines", name)}, paths


# --------------------------------------------------------------------------- sharing


@pytest.mark.parametrize(
    ("results_kind", "pipelines_kind", "how"),
    [
        ("delta", "memory", "sync"),
        ("memory", "delta", "async"),
        ("delta", "delta", "processes"),
    ],
)
def test_a_second_pipeline_on_the_result_store_computes_nothing(
    tmp_path: Path, results_kind: str, pipelines_kind: str, how: str
) -> None:
    def make(kind: str, name: str) -> Store:
        return delta(tmp_path / name) if kind == "delta" else MemoryStore()

    results = make(results_kind, "results")
    stores = {"a": make(pipelines_kind, "a"), "b": make(pipelines_kind, "b")}
    run: dict[str, Any] = {"orchestrator": "async"} if how == "async" else {}
    first = build("a", stores["a"], results).run(**run)
    assert [first.counts[n].computed for n in ("square", "describe")] == [3, 3]

    second = build("b", stores["b"], results)
    if how == "processes":
        with ProcessExecutor(2) as executor:
            counts = second.run(executor=executor).counts
    else:
        counts = second.run(**run).counts
    assert [(counts[n].computed, counts[n].cached) for n in ("square", "describe")] == [(0, 3)] * 2
    assert labels(second) == ["v0", "v1", "v4"]
    assert set(second.status()["state"]) == {"CACHED"}
    (run,) = second.runs().iter_rows(named=True)
    assert (run["computed"], run["cached"]) == (0, 6)
    assert set(build("a", stores["a"], results).status()["state"]) == {"SUCCESS"}
    assert_apart(results, stores)
    if results_kind == "delta":  # the memo, read by delta-rs: one row per call, once
        memo = list((tmp_path / "results" / "results").rglob("*.delta"))
        assert sorted(len(DeltaTable(str(p)).to_pyarrow_table()) for p in memo) == [3, 3]


@pytest.mark.service
@pytest.mark.parametrize("backend", ["s3", "postgres"])
def test_a_team_result_store_on_a_server(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    results: Store = request.getfixturevalue({"s3": "s3_store", "postgres": "pg_store"}[backend])
    stores = {"a": delta(tmp_path / "a"), "b": MemoryStore()}
    assert build("a", stores["a"], results).run().counts["square"].computed == 3
    second = build("b", stores["b"], results)
    assert second.run().counts["square"].cached == 3
    assert labels(second) == ["v0", "v1", "v4"]
    assert_apart(results, stores)


def test_the_default_layout_is_unchanged(tmp_path: Path) -> None:
    one, two = delta(tmp_path / "one"), delta(tmp_path / "two")
    build("p", one, None).run()
    build("p", two, two).run()  # the same store named twice: the same layout
    assert one.list() == two.list()
    assert {p[0] for p in one.list()} == {"code", "results", "pipelines"}
    tables = [
        {str(p.relative_to(root)) for p in root.rglob("*.delta")}
        for root in (tmp_path / "one", tmp_path / "two")
    ]
    assert tables[0] == tables[1]
    assert "code.delta" in tables[0]


# --------------------------------------------------------------------------- plan, files

LIB = """
from pathlib import Path

from podline import function_pod

FACTOR = 10


@function_pod("scaled", live_output=False)
def scale(x: int) -> int:
    return x * FACTOR


@function_pod("report", live_output=False)
def render(x: int, folder: str) -> Path:
    path = Path(folder) / f"{x}.txt"
    path.write_text(str(x))
    return path
"""


def reasons(plan: Plan, node: str) -> dict[tuple[str, str, str], int]:
    frame = plan.reasons().filter(pl.col("node") == node)
    return {(r["status"], r["reason"], r["detail"]): r["rows"] for r in frame.iter_rows(named=True)}


@pytest.fixture
def lib(user_project: ModuleTree) -> ModuleTree:
    user_project.write("shared_lib.py", LIB)
    return user_project


def scaled(lib: ModuleTree, name: str, store: Store, results: Store, folder: Path) -> Pipeline:
    module = lib.load("shared_lib")
    rows = [{"k": i, "x": i, "folder": str(folder)} for i in range(3)]
    source = podline.DictSource(rows, tag_columns=["k"], source_id="numbers")
    with Pipeline(name, store, result_store=results) as pipeline:
        module.scale.pod(source)
        module.render.pod(source)
    return pipeline


def test_plan_explain_and_invalidate_read_both_stores(lib: ModuleTree, tmp_path: Path) -> None:
    results, a_store, b_store = MemoryStore(), MemoryStore(), MemoryStore()
    folder = tmp_path / "files"
    folder.mkdir()
    scaled(lib, "a", a_store, results, folder).run()
    b = scaled(lib, "b", b_store, results, folder)
    served = {("cached", "stored result", ""): 3}
    assert reasons(b.plan(), "scale") == served  # from the shared memo, with no records
    assert b.run().counts["scale"].cached == 3

    # Forgetting through b forgets the shared results: a computes the row again.
    assert b.invalidate("scale", k=1) == 1
    a = scaled(lib, "a", a_store, results, folder)
    assert reasons(a.plan(), "scale") == {
        ("computed", "stored result missing", ""): 1,
        ("cached", "stored result", ""): 2,
    }
    assert a.run().counts["scale"].computed == 1
    # A recompute through a replaces the shared results; b is served the new ones.
    forced = a.run(recompute="scale").counts["scale"]
    assert (forced.computed, forced.recomputed) == (3, 3)
    assert scaled(lib, "b", b_store, results, folder).run().counts["scale"].cached == 3

    # A file a shared result names is gone: b's plan says so, and its run writes it again.
    (folder / "1.txt").unlink()
    b = scaled(lib, "b", b_store, results, folder)
    assert ("computed", "output file missing", str(folder / "1.txt")) in reasons(b.plan(), "render")
    assert b.run().counts["render"].computed == 1
    assert (folder / "1.txt").read_text() == "1"

    # The code records went with the results: b, which never computed `scale`, names what
    # changed since the results were made.
    lib.edit("shared_lib.py", "FACTOR = 10", "FACTOR = 100")
    b = scaled(lib, "b", b_store, results, folder)
    ((status, reason, detail),) = reasons(b.plan(), "scale")
    assert (status, reason) == ("computed", "changed code")
    assert detail.startswith("constant `FACTOR` changed"), detail
    assert b.explain("scale", k=2).frame["detail"].to_list() == [detail]
    assert ("code",) in results.list()
    assert all(p[0] == "pipelines" for p in [*a_store.list(), *b_store.list()])


def test_records_whose_results_are_gone_are_computed_again(tmp_path: Path) -> None:
    store = delta(tmp_path / "pipeline")
    build("p", store, delta(tmp_path / "lost")).run()
    # The pipeline's records remain; the results they name are in no store any more.
    again = build("p", store, delta(tmp_path / "empty"))
    counts = again.run().counts
    assert [counts[n].computed for n in ("square", "describe")] == [3, 3]
    assert labels(again) == ["v0", "v1", "v4"]


# --------------------------------------------------------------------------- commit order

# Runs a pipeline whose store is killed (os._exit) right after the first flush that commits
# provenance records: whatever the records name must then be in the result store already.
KILLED = """
import os, sys, time
from pathlib import Path

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore

root, pause, window = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])


class KilledAfterRecords(DeltaStore):
    def flush(self):
        super().flush()
        if any(root.joinpath("pipeline").rglob("records.delta/_delta_log/*.json")):
            os._exit(9)


@function_pod("y")
def slow_square(x: int) -> int:
    time.sleep(pause)
    return x * x


never = dict(flush_seconds=None, flush_rows=1 << 30)
store = KilledAfterRecords(root / "pipeline", **never)
results = DeltaStore(root / "results", **never)
source = podline.DictSource([{"k": i, "x": i} for i in range(8)], tag_columns=["k"])
with Pipeline("killed", store, result_store=results) as pipeline:
    slow_square.pod(source)
pipeline.run(commit_seconds=window)
"""


def committed(root: Path, name: str, column: str) -> set[str]:
    """``column`` of every committed table named ``name`` below ``root``, read by delta-rs."""
    found: set[str] = set()
    for path in root.rglob(f"{name}.delta"):
        found |= set(DeltaTable(str(path)).to_pyarrow_table().column(column).to_pylist())
    return found


@pytest.mark.parametrize(
    "times",  # (seconds a call takes, the commit window)
    [(0.0, 60.0), (0.05, 0.1)],
    ids=["commit-at-the-end", "commits-during-the-run"],
)
def test_results_are_committed_before_the_records_naming_them(
    tmp_path: Path, times: tuple[float, float]
) -> None:
    process = run_script(script_file(tmp_path, "killed", KILLED), str(tmp_path), *map(str, times))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 9, err
    named = committed(tmp_path / "pipeline", "records", RESULT_ID)
    memo = committed(tmp_path / "results" / "results", "*", RECORD_ID)
    assert named, "no records were committed: the kill came too early to test anything"
    assert named <= memo, f"records name {len(named - memo)} results never committed"


def test_a_failing_result_store_commit_commits_no_records(tmp_path: Path) -> None:
    class Refusing(MemoryStore):
        def flush(self) -> None:
            raise OSError("the result store is unreachable")

    store = delta(tmp_path / "pipeline")
    # The status and log rows wait for the results too (the observers warn, as they do
    # whenever they cannot commit).
    with (
        pytest.raises(OSError, match="unreachable"),
        pytest.warns(ObservationWarning, match="unreachable"),
    ):
        build("p", store, Refusing()).run()
    assert not list((tmp_path / "pipeline").rglob("records.delta"))
