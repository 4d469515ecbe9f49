"""``pipeline.plan()`` and ``pipeline.explain()``: what the next run would do and why, per node
and per row, computed without calling any function or writing to the store; each reason, the
plan against the run that follows (linear, join, diamond), a fresh process planning from the
store, and the text, HTML and polars renderings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import podline
from conftest import ModuleTree
from podline import SKIP, function_pod
from podline.errors import InputValidationError, PipelineError
from podline.operators import Filter, Join
from podline.pipeline import OrchestratorResult, Pipeline, Plan
from podline.stores import DeltaStore, MemoryStore, Store

SCALE = """
FACTOR = 10


def ext_scale(x):
    return x * FACTOR
"""

# The user's pipeline module: every call is counted in CALLS (module state, which code
# identity does not follow), so a test sees whether planning called anything.
PIPE = """
import podline
from podline import function_pod
from podline.pipeline import Pipeline
from userlib.scale import ext_scale

CALLS = []
STEP = 1


@function_pod("scaled", live_output=False)
def scale(x: int) -> int:
    CALLS.append(("scale", x))
    return ext_scale(x)


@function_pod("label", live_output=False)
def describe(scaled: int) -> str:
    CALLS.append(("describe", scaled))
    return f"v{scaled}"


def make_shift(step):
    def shift(x: int) -> int:
        CALLS.append(("shift", x))
        return x + step

    return shift


shift = function_pod("shifted", live_output=False)(make_shift(STEP))


def build(store, xs):
    rows = [{"id": i, "x": x} for i, x in enumerate(xs)]
    source = podline.DictSource(rows, tag_columns=["id"], source_id="numbers")
    with Pipeline("plans", store) as pipeline:
        describe.pod(scale.pod(source))
        shift.pod(source)
    return pipeline
"""


@pytest.fixture
def project(user_project: ModuleTree) -> ModuleTree:
    user_project.write("userlib/scale.py", SCALE)
    user_project.write("pipe.py", PIPE)
    return user_project


def build(project: ModuleTree, store: Store, xs: list[int]) -> tuple[Pipeline, list[Any]]:
    """The pipeline as a new process would build it from the project's files, and the list
    its pods append their calls to."""
    module = project.load("pipe")
    return module.build(store, xs), module.CALLS


def reasons(plan: Plan, node: str) -> dict[tuple[str, str, str], int]:
    """(status, reason, detail) -> rows, for one node."""
    frame = plan.reasons().filter(pl.col("node") == node)
    return {(r["status"], r["reason"], r["detail"]): r["rows"] for r in frame.iter_rows(named=True)}


def snapshot(store: Store, root: Path | None) -> Any:
    """What is stored: the tables (and for a Delta store every file, with its size and
    modification time), to show a plan wrote nothing."""
    tables = sorted(store.list())
    if root is None:
        return tables, {path: store.scan(path) for path in tables}
    files = sorted(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    )
    return tables, files


def assert_run_matches(plan: Plan, result: OrchestratorResult) -> None:
    """What the run did is what the plan said: exactly for rows the plan knows; a pending
    row is computed or served by the run (never failed or skipped here), or dropped by an
    operator that reads its values (a filter)."""
    for label, node in plan.nodes.items():
        counts = result.counts[label]
        if not node.pending:
            assert counts.rows == node.output_rows, label
        assert node.output_rows - node.pending <= counts.rows <= node.output_rows, label
        if node.kind != "function":
            continue
        assert (counts.skipped, counts.failed) == (node.skipped, node.failed), label
        assert node.computed <= counts.computed <= node.computed + node.pending, label
        assert node.cached <= counts.cached <= node.cached + node.pending, label
        served = counts.computed + counts.cached - node.computed - node.cached
        assert 0 <= served <= node.pending, label


# --------------------------------------------------------------------------- reasons


@pytest.mark.parametrize("backend", ["memory", "delta"])
def test_new_rows_computing_nothing_writing_nothing(
    project: ModuleTree, tmp_path: Path, backend: str
) -> None:
    root = tmp_path / "store" if backend == "delta" else None
    store: Store = DeltaStore(root, flush_seconds=None) if root else MemoryStore()
    pipeline, _ = build(project, store, [0, 1, 2])
    pipeline.run()
    store.flush()
    before = snapshot(store, root)

    pipeline, calls = build(project, store, [0, 1, 2, 3, 4])
    plan = pipeline.plan()
    explained = pipeline.explain("describe", id=4)
    assert calls == []  # nothing was called
    assert snapshot(store, root) == before  # nothing was written
    assert reasons(plan, "scale") == {
        ("computed", "new input row", ""): 2,
        ("cached", "stored result", ""): 3,
    }
    assert reasons(plan, "describe") == {
        ("cached", "stored result", ""): 3,
        ("pending", "pending upstream", _WAITS_FOR_SCALE): 2,
    }
    assert explained.frame.select("id", "status", "reason").rows() == [
        (4, "pending", "pending upstream")
    ]
    assert [plan[n].output_rows for n in ("scale", "describe", "shift")] == [5, 5, 5]
    result = pipeline.run()
    assert_run_matches(plan, result)
    assert sorted(x for name, x in calls if name == "scale") == [3, 4]


_WAITS_FOR_SCALE = "waits for scale: computed unless the new result equals a stored one"


def test_changed_input_content(project: ModuleTree) -> None:
    store = MemoryStore()
    build(project, store, [0, 1, 2])[0].run()
    pipeline, calls = build(project, store, [0, 7, 2])
    plan = pipeline.plan()
    assert reasons(plan, "scale") == {
        ("computed", "changed input content", ""): 1,
        ("cached", "stored result", ""): 2,
    }
    assert reasons(plan, "shift")[("computed", "changed input content", "")] == 1
    row = pipeline.explain("scale", id=1).frame
    assert row.select("id", "status", "reason").rows() == [(1, "computed", "changed input content")]
    assert calls == []
    assert_run_matches(plan, pipeline.run())


@pytest.mark.parametrize(
    ("path", "old", "new", "detail"),
    [
        ("userlib/scale.py", "x * FACTOR", "x * FACTOR + 1", "helper `ext_scale` changed"),
        ("userlib/scale.py", "FACTOR = 10", "FACTOR = 100", "constant `FACTOR` changed, read by"),
        ("pipe.py", 'f"v{scaled}"', 'f"w{scaled}"', "function `describe` changed"),
    ],
    ids=["helper", "constant", "function"],
)
def test_changed_code_names_what_changed(
    project: ModuleTree, path: str, old: str, new: str, detail: str
) -> None:
    store = MemoryStore()
    build(project, store, [0, 1, 2])[0].run()
    project.edit(path, old, new)
    pipeline, calls = build(project, store, [0, 1, 2])
    plan = pipeline.plan()
    node = "describe" if path == "pipe.py" else "scale"
    (key,) = [k for k in reasons(plan, node) if k[0] == "computed"]
    assert key[1] == "changed code", key
    assert key[2].startswith(detail), key
    assert reasons(plan, "shift") == {("cached", "stored result", ""): 3}  # not touched
    explained = pipeline.explain(node, id=2)
    assert explained.frame["detail"].to_list() == [key[2]]
    assert calls == []
    assert_run_matches(plan, pipeline.run())


def test_changed_closure_value_is_named(project: ModuleTree) -> None:
    store = MemoryStore()
    build(project, store, [0, 1])[0].run()
    project.edit("pipe.py", "STEP = 1", "STEP = 2")
    pipeline, calls = build(project, store, [0, 1])
    plan = pipeline.plan()
    closure = "closure value `step` of `make_shift.<locals>.shift` changed"
    assert reasons(plan, "shift") == {("computed", "changed code", closure): 2}
    assert reasons(plan, "scale") == {("cached", "stored result", ""): 2}
    assert calls == []
    assert_run_matches(plan, pipeline.run())


def test_a_result_forgotten_after_a_detour_through_other_code_is_missing(
    project: ModuleTree,
) -> None:
    """The code that had the result is the current one again: the row is computed because
    its result was forgotten, not because the code changed (another version's result for
    the same argument is still stored)."""
    store = MemoryStore()
    build(project, store, [0, 1])[0].run()
    project.edit("pipe.py", "STEP = 1", "STEP = 2")
    build(project, store, [0, 1])[0].run()
    project.edit("pipe.py", "STEP = 2", "STEP = 1")
    pipeline, calls = build(project, store, [0, 1])
    assert pipeline.run().counts["shift"].cached == 2  # the first version's results
    assert pipeline.invalidate("shift", id=1) == 1
    plan = pipeline.plan()
    assert reasons(plan, "shift") == {
        ("cached", "stored result", ""): 1,
        ("computed", "stored result missing", _FORGOTTEN): 1,
    }
    assert calls == []
    assert_run_matches(plan, pipeline.run())
    # Other code, never run on this row: the change is still the reason.
    project.edit("pipe.py", "STEP = 1", "STEP = 3")
    closure = "closure value `step` of `make_shift.<locals>.shift` changed"
    changed = build(project, store, [0, 1])[0].plan()
    assert reasons(changed, "shift") == {("computed", "changed code", closure): 2}


def test_forced_recompute(project: ModuleTree) -> None:
    store = MemoryStore()
    build(project, store, [0, 1, 2])[0].run()
    pipeline, calls = build(project, store, [0, 1, 2])
    plan = pipeline.plan(recompute="scale")
    assert reasons(plan, "scale") == {("computed", "forced recompute", ""): 3}
    assert reasons(plan, "describe") == {("pending", "pending upstream", _WAITS_FOR_SCALE): 3}
    assert pipeline.plan().counts().filter(pl.col("kind") == "function")["computed"].sum() == 0
    with pytest.raises(PipelineError, match="recompute names no function node"):
        pipeline.plan(recompute="nope")
    assert calls == []
    result = pipeline.run(recompute="scale")
    assert_run_matches(plan, result)
    # The results are the same values: the node downstream is served.
    assert (result.counts["scale"].computed, result.counts["describe"].cached) == (3, 3)


OUT: list[Path] = []
RENDERED: list[int] = []


@function_pod("figure", live_output=False)
def render(a: int) -> Path:
    RENDERED.append(a)
    path = OUT[0] / f"figure-{a}.txt"
    path.write_text("x" * (a + 1))
    return path


@function_pod("half", live_output=False)
def halve(a: int) -> int:
    RENDERED.append(a)
    return SKIP if a % 2 else a // 2


def figures(store: Store, n: int = 3) -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(n)]
    with Pipeline("figures", store) as pipeline:
        source = podline.DictSource(rows, tag_columns=["id"], source_id="nums")
        render.pod(source)
        halve.pod(source)
    return pipeline


def test_missing_output_file_and_stored_skips(store: Store, tmp_path: Path) -> None:
    OUT[:] = [tmp_path / "out"]
    OUT[0].mkdir()
    RENDERED.clear()
    figures(store).run()
    (OUT[0] / "figure-1.txt").unlink()
    RENDERED.clear()
    store.flush()
    root = tmp_path / "store" if isinstance(store, DeltaStore) else None
    before = snapshot(store, root)
    pipeline = figures(store)
    plan = pipeline.plan()
    assert RENDERED == []
    assert snapshot(store, root) == before  # the stale result is still stored
    assert reasons(plan, "render") == {
        ("computed", "output file missing", str(OUT[0] / "figure-1.txt")): 1,
        ("cached", "stored result", ""): 2,
    }
    assert reasons(plan, "halve") == {
        ("cached", "stored result", ""): 2,
        ("skipped", "stored SKIP", "the function returned SKIP for it"): 1,
    }
    assert plan["halve"].output_rows == 2  # the skipped row gives no output
    assert (OUT[0] / "figure-1.txt").exists() is False  # planning rendered nothing
    result = pipeline.run()
    assert_run_matches(plan, result)
    assert RENDERED == [1]


@function_pod("checked", live_output=False)
def check(a: int) -> int:
    RENDERED.append(a)
    if a == 2:
        raise ValueError(f"no good: {a}")
    return a


def test_earlier_failures_and_forgotten_results(store: Store) -> None:
    def checks() -> Pipeline:
        rows = [{"id": i, "a": i} for i in range(3)]
        with Pipeline("checks", store) as pipeline:
            check.pod(podline.DictSource(rows, tag_columns=["id"], source_id="nums"))
        return pipeline

    checks().run()
    assert checks().invalidate("check", id=0) == 1
    RENDERED.clear()
    plan = checks().plan()
    assert RENDERED == []
    assert reasons(plan, "check") == {
        ("cached", "stored result", ""): 1,
        ("computed", "stored result missing", _FORGOTTEN): 1,
        ("computed", "earlier call failed", "ValueError: no good: 2"): 1,
    }
    result = checks().run()
    assert (result.counts["check"].computed, result.counts["check"].failed) == (1, 1)
    assert reasons(checks().plan(), "check") == {
        ("cached", "stored result", ""): 2,
        ("computed", "earlier call failed", "ValueError: no good: 2"): 1,
    }


_FORGOTTEN = "an earlier run gave it a result, since forgotten (invalidate) or deleted"


# --------------------------------------------------------------------------- plan == run


def _inc(x: int) -> int:
    return x + 1


def graphs(store: Store, shape: str, n: int, offset: int) -> Pipeline:
    """A linear, join or diamond pipeline over ``n`` rows whose second function adds
    ``offset`` (a new pod, so a change of ``offset`` is a change of code)."""

    @function_pod("y", live_output=False)
    def first(x: int) -> int:
        return x * 2

    second = function_pod("z", live_output=False)(_adder(offset))

    @function_pod("w", live_output=False)
    def third(y: int, z: int) -> int:
        return y + z

    rows = [{"id": i, "x": i % 3} for i in range(n)]
    with Pipeline(shape, store) as pipeline:
        source = podline.DictSource(rows, tag_columns=["id"], source_id="src")
        ys = first.pod(source)
        if shape == "linear":
            second.pod(ys.map_packets({"y": "x"}))
        elif shape == "filter":  # keeps rows by a packet value the plan cannot know
            kept = Filter(pl.col("y") > 2, pl.col("id") != n - 1)(ys)
            second.pod(kept.map_packets({"y": "x"}))
        elif shape == "join":
            other = podline.DictSource(
                [{"id": i, "c": i} for i in range(n + 1)], tag_columns=["id"], source_id="other"
            )
            second.pod(Join()(ys, other).map_packets({"y": "x"}).drop_packet_columns("c"))
        else:  # diamond: the source feeds two pods whose outputs are joined
            zs = second.pod(source)
            third.pod(Join()(ys, zs))
    return pipeline


def _adder(offset: int) -> Any:
    def add(x: int) -> int:
        return x + offset

    return add


@pytest.mark.parametrize("shape", ["linear", "join", "diamond", "filter"])
def test_plan_equals_the_following_run(shape: str) -> None:
    store = MemoryStore()
    graphs(store, shape, 4, 1).run()
    for n, offset, recompute in [(4, 1, False), (9, 1, False), (9, 2, False), (9, 2, True)]:
        pipeline = graphs(store, shape, n, offset)
        plan = pipeline.plan(recompute=recompute)
        assert_run_matches(plan, pipeline.run(recompute=recompute))
        again = graphs(store, shape, n, offset).plan()  # after the run: everything stored
        assert again.counts()["computed"].sum() == again.counts()["pending"].sum() == 0


# --------------------------------------------------------------------------- fresh process

PLAN_SCRIPT = """
import json
import sys

from podline.stores import DeltaStore

import pipe

with DeltaStore(sys.argv[1]) as store:
    pipeline = pipe.build(store, [0, 1, 2])
    if sys.argv[2] == "run":
        pipeline.run()
    else:
        plan = pipeline.plan()
        explained = pipeline.explain("scale", id=1)
        print(plan)
        print(json.dumps({
            "calls": pipe.CALLS,
            "reasons": plan.reasons().rows(),
            "explain": explained.frame.rows(),
        }))
"""


def test_a_fresh_process_plans_from_the_store(project: ModuleTree, tmp_path: Path) -> None:
    project.write("plan_it.py", PLAN_SCRIPT)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project.root), *sys.path])}
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    def fresh(step: str) -> str:
        done = subprocess.run(
            [sys.executable, str(project.root / "plan_it.py"), str(store), step],
            capture_output=True,
            text=True,
            env=env,
            cwd=project.root,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    fresh("run")
    project.edit("userlib/scale.py", "x * FACTOR", "x * FACTOR - 1")
    out = fresh("plan")
    found = json.loads(out.splitlines()[-1])
    assert found["calls"] == []
    assert ["scale", "computed", "changed code", "helper `ext_scale` changed", 3] in found[
        "reasons"
    ]
    assert found["explain"] == [[1, "computed", "changed code", "helper `ext_scale` changed"]]
    table = out.splitlines()
    assert "  scale       function     3         3       0        0       0        0" in table
    assert "    scale: 3 computed: changed code (helper `ext_scale` changed)" in table


# --------------------------------------------------------------------------- rendering


def test_text_html_and_frames(project: ModuleTree) -> None:
    store = MemoryStore()
    build(project, store, [0, 1])[0].run()
    pipeline, _ = build(project, store, [0, 1, 2])
    plan = pipeline.plan()
    assert str(plan).splitlines() == [
        f"plan of {pipeline.uri}: what run() would do (nothing was computed)",
        "  node        kind      rows  computed  cached  skipped  failed  pending",
        "  DictSource  source       3",
        "  scale       function     3         1       2        0       0        0",
        "  describe    function     3         0       2        0       0        1",
        "  shift       function     3         1       2        0       0        0",
        "  why:",
        "    scale: 1 computed: new input row",
        f"    describe: 1 pending: pending upstream ({_WAITS_FOR_SCALE})",
        "    shift: 1 computed: new input row",
    ]
    page = plan._repr_html_()
    assert page.startswith("<div>")
    assert "<th>computed</th>" in page
    assert "<td>describe</td><td>function</td><td>3</td><td>0</td><td>2</td>" in page
    counts = plan.counts()
    assert counts.schema == pl.Schema(
        {"node": pl.String, "kind": pl.String, "rows": pl.Int64}
        | dict.fromkeys(["computed", "cached", "skipped", "failed", "pending"], pl.Int64)
    )
    scale = counts.filter(pl.col("node") == "scale").row(0)
    assert scale == ("scale", "function", 3, 1, 2, 0, 0, 0)
    rows = plan.rows("scale")
    assert rows.columns == ["id", "status", "reason", "detail"]
    assert rows["status"].to_list() == ["cached", "cached", "computed"]
    explained = pipeline.explain("scale", id=2)
    assert str(explained).splitlines() == [
        "function node scale, id=2: 1 row(s)",
        "  id  status    reason         detail",
        "   2  computed  new input row",
    ]
    assert "<td>new input row</td>" in explained._repr_html_()


def test_explain_escapes_and_rejects(project: ModuleTree) -> None:
    store = MemoryStore()
    project.edit("pipe.py", '"id": i', '"id": f"<b>{i}</b>"')
    pipeline, _ = build(project, store, [0, 1])
    explained = pipeline.explain("scale", id="<b>1</b>")
    assert explained.frame.height == 1
    page = explained._repr_html_()
    assert "&lt;b&gt;1&lt;/b&gt;" in page
    assert "<b>1</b>" not in page
    assert pipeline.explain("scale").frame.height == 2  # no tags: every row
    assert pipeline.explain("scale", id="none such").frame.height == 0
    with pytest.raises(InputValidationError, match=r"no tag column\(s\) 'idx'"):
        pipeline.explain("scale", idx=1)
    with pytest.raises(PipelineError, match="explain names no node: 'nope'"):
        pipeline.explain("nope")


def test_explain_takes_tag_names_that_are_not_identifiers(store: Store) -> None:
    rows = [{"sample id": i, "a": i} for i in range(3)]
    with Pipeline("odd", store) as pipeline:
        halve.pod(podline.DictSource(rows, tag_columns=["sample id"], source_id="odd"))
    explained = pipeline.explain("halve", tags={"sample id": 1})
    assert explained.frame.select("sample id", "status", "reason").rows() == [
        (1, "computed", "new input row")
    ]


class _Unplannable:
    """A source node an orchestrator can run but a plan cannot ask (no ``preview``)."""

    node_type = "source"
    upstreams = ()

    def __init__(self, label: str) -> None:
        self.label = label

    def content_hash(self) -> Any: ...
    def pipeline_hash(self) -> Any: ...
    def output_schema(self, *, system_tags: bool = False) -> Any: ...
    def set_output(self, stream: Any) -> None: ...
    def execute(self, **kwargs: Any) -> Any: ...


def test_a_node_without_preview_is_named() -> None:
    from podline.nodes import SourceNodeProtocol
    from podline.pipeline import PipelineGraph
    from podline.pipeline.layout import PipelineLayout
    from podline.pipeline.plan import make_plan

    node = _Unplannable("duck")
    assert isinstance(node, SourceNodeProtocol)  # it runs
    store = MemoryStore()
    with pytest.raises(PipelineError, match=r"node 'duck' cannot be planned: .*PreviewSourceNode"):
        make_plan(
            PipelineGraph((node,)),  # type: ignore[arg-type]
            PipelineLayout("ducks", store, store),
            uri="ducks@0",
        )


def test_a_depends_on_version_change_is_a_changed_function(
    user_project: ModuleTree, installed_packages: ModuleTree, tmp_path: Path
) -> None:
    installed_packages.write("fakepkg/__init__.py", "def times(x):\n    return x * 10\n")
    installed_packages.distribution("fake-dist", "1.0", top_level="fakepkg")
    user_project.write(
        "pinned_pipe.py",
        """
        from fakepkg import times
        from podline import function_pod

        @function_pod("y", live_output=False, depends_on=["fakepkg"])
        def pinned(x: int) -> int:
            return times(x)
        """,
    )
    store = MemoryStore()

    def pipeline() -> Pipeline:
        module = user_project.load("pinned_pipe")
        source = podline.DictSource([{"id": i, "x": i} for i in range(2)], tag_columns=["id"])
        with Pipeline("pinned", store, observe=False) as built:
            module.pinned.pod(source)
        return built

    pipeline().run()
    upgraded = ModuleTree(tmp_path / "env2" / "site-packages")
    upgraded.distribution("fake-dist", "2.0", top_level="fakepkg")
    sys.path.insert(0, str(upgraded.root))
    try:
        (key,) = reasons(pipeline().plan(), "pinned")
    finally:
        sys.path.remove(str(upgraded.root))
    assert key[:2] == ("computed", "changed function")
    assert key[2] == "depends_on versions changed: fake-dist 1.0 -> 2.0", key
