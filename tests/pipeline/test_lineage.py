"""``pipeline.trace()`` and ``pipeline.impact()``: hand-built pipelines whose lineage is known
row by row (linear, join, diamond, batch, merge-join, semi-join, filter, skip), checked
exactly; a fresh pipeline object reading what a run stored; the renderings; and a property
over random pipelines of joins and batches: every row traces to exactly the source records
whose values formed it, and impact is the inverse of trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import podline
from podline import SKIP, DictSource, function_pod
from podline.errors import InputValidationError, PipelineError
from podline.pipeline import Pipeline, lineage_rows
from podline.stores import DeltaStore, MemoryStore, Store


@function_pod("y")
def double(x: int) -> int:
    return 2 * x


@function_pod("w")
def odd_only(y: int) -> int:
    return y if (y // 2) % 2 else SKIP


def _src(name: str, column: str, keys: list[int], scale: int = 1) -> DictSource:
    rows = [{"k": k, column: k * scale} for k in keys]
    return DictSource(rows, tag_columns=["k"], label=name, source_id=f"{name}-id")


def _records(trace: Any) -> set[tuple[int, str, str]]:
    return {(r["row"], r["source"], r["record_id"]) for r in trace.records().iter_rows(named=True)}


def _impact(impact: Any) -> set[tuple[str, str, str | None]]:
    return {(r["node"], r["status"], r["tags"]) for r in impact.frame.iter_rows(named=True)}


def test_linear_trace_names_the_function_run_and_source_row() -> None:
    store = MemoryStore()
    a = _src("a", "x", [0, 1, 2])
    with Pipeline("p", store=store) as p:
        double.pod(a)
    run = p.run()
    trace = p.trace("double", k=1)
    assert _records(trace) == {(0, "a", "#1")}
    steps = trace.frame.to_dicts()
    assert [(s["step"], s["node"], s["kind"], s["status"]) for s in steps] == [
        ("0", "double", "function", "computed"),
        ("0.0", "a", "source", "read"),
    ]
    function = p.nodes["double"].pod.packet_function
    assert steps[0]["run_id"] == run.run_id
    assert steps[0]["function_version"] == "v0"
    assert steps[0]["code_identity"] == function.code_hash.short(16)
    assert steps[0]["function_identity"] == function.content_hash().short(16)
    assert json.loads(steps[1]["values"]) == {"k": 1, "x": 1}
    assert steps[1]["source_id"] == "a-id"
    # A second run serves the row from the memo: the run that computed it is still named.
    p.run()
    assert p.trace("double", k=1).frame["run_id"][0] == run.run_id
    assert _impact(p.impact("a", record_id="#2")) == {("double", "computed", "k=2")}
    assert _impact(p.impact("a-id", k=0)) == {("double", "computed", "k=0")}
    # Without run records (a run that crashed records none), the status records decide.
    runs = store.scan(("pipelines", "p", "runs"), columns=["__record_id"])
    assert runs is not None
    store.delete(("pipelines", "p", "runs"), runs.column("__record_id").combine_chunks())
    assert p.trace("double", k=1).frame["run_id"][0] == run.run_id
    # Another pipeline on the same store finds the result in the shared memo: its record
    # says cached, and its run is the first of its own runs that served it.
    with Pipeline("q", store=store) as q:
        double.pod(a)
    served = q.run()
    q.run()
    assert q.trace("double", k=1).frame.select("status", "run_id").row(0) == (
        "cached",
        served.run_id,
    )


def test_join_and_diamond_trace_every_lineage() -> None:
    a, b = _src("a", "x", [0, 1, 2]), _src("b", "z", [1, 2, 3], 10)
    with Pipeline("p", store=MemoryStore()) as p:
        d = double.pod(a)
        d.join(b, label="joined")
        # A diamond: a's records reach "both" through double and directly.
        d.join(a, label="both")
    p.run()
    assert _records(p.trace("joined", k=2)) == {(0, "a", "#2"), (0, "b", "#1")}
    assert _records(p.trace("both", k=1)) == {(0, "a", "#1")}
    paths = p.trace("both", k=1).frame.select("step", "node").rows()
    assert paths == [("0", "both"), ("0.0", "double"), ("0.0.0", "a"), ("0.1", "a")]
    assert _impact(p.impact("a", record_id="#2")) == {
        ("double", "computed", "k=2"),
        ("joined", "present", "k=2"),
        ("both", "present", "k=2"),
    }
    # b's record #2 (k=3) has no match in a: the join is where it stopped.
    assert _impact(p.impact("b", record_id="#2")) == {("joined", "filtered", None)}


def test_batch_traces_each_row_to_every_gathered_record() -> None:
    a, b = _src("a", "x", [0, 1, 2, 3, 4]), _src("b", "z", [0, 1, 2, 3, 4])
    with Pipeline("p", store=MemoryStore()) as p:
        a.join(b).batch(2, label="pairs")
    p.run()
    trace = p.trace("pairs", row=1)
    assert _records(trace) == {
        (0, source, record) for source in ("a", "b") for record in ("#2", "#3")
    }
    assert _records(p.trace("pairs", k=[4])) == {(0, "a", "#4"), (0, "b", "#4")}
    assert _impact(p.impact("b", record_id="#3")) == {
        ("Join", "present", "k=3"),
        ("pairs", "present", "k=[2, 3]"),
    }


def test_merge_join_and_semi_join() -> None:
    a, b = _src("a", "v", [0, 1, 2]), _src("b", "v", [1, 2, 3], 10)
    with Pipeline("p", store=MemoryStore()) as p:
        a.merge_join(b, label="merged")
        a.semi_join(b, label="kept")
    p.run()
    assert _records(p.trace("merged", k=1)) == {(0, "a", "#1"), (0, "b", "#0")}
    # A semi-join's row is its left row: b only decides whether it passes.
    assert _records(p.trace("kept", k=2)) == {(0, "a", "#2")}
    assert p.trace("kept", k=0).frame.select("node", "status").row(0) == ("kept", "filtered")
    assert _impact(p.impact("a", record_id="#0")) == {
        ("merged", "filtered", None),
        ("kept", "filtered", None),
    }
    assert _impact(p.impact("b", record_id="#0")) == {("merged", "present", "k=1")}


def test_filtered_and_skipped_rows_are_reported_where_they_stopped() -> None:
    a = _src("a", "x", [0, 1, 2, 3])
    with Pipeline("p", store=MemoryStore()) as p:
        big = double.pod(a).filter(pl.col("y") > 2, label="big")
        odd_only.pod(big)
    p.run()
    stop = p.trace("big", k=1)
    assert stop.frame.select("step", "node", "status").rows() == [
        ("0", "big", "filtered"),
        ("0.0", "double", "computed"),
        ("0.0.0", "a", "read"),
    ]
    # y = 4 (k=2): odd_only returned SKIP; a filtered row stops at the filter, not below.
    assert p.trace("odd_only", k=2).frame.select("node", "status").row(0) == (
        "odd_only",
        "skipped",
    )
    assert p.trace("odd_only", k=0).frame.select("node", "status").row(0) == ("big", "filtered")
    assert _impact(p.impact("a", record_id="#2")) == {
        ("double", "computed", "k=2"),
        ("big", "present", "k=2"),
        ("odd_only", "skipped", "k=2"),
    }
    assert _impact(p.impact("a", record_id="#1")) == {
        ("double", "computed", "k=1"),
        ("big", "filtered", None),
    }
    assert p.trace("big", k=99).roots == []


def _study(store: Store) -> Pipeline:
    a, b = _src("a", "x", [0, 1, 2]), _src("b", "z", [0, 1, 2])
    with Pipeline("study", store=store) as p:
        double.pod(a.join(b), label="scaled")
    return p


def test_a_fresh_pipeline_object_traces_from_the_store(tmp_path: Path) -> None:
    """A function node's rows come from its records: no run in this process; an operator
    node that stores nothing is reported as not at hand, its sources still reached."""
    run = _study(DeltaStore(tmp_path / "store")).run()
    fresh = _study(DeltaStore(tmp_path / "store"))
    trace = fresh.trace("scaled", k=2)
    assert _records(trace) == {(0, "a", "#2"), (0, "b", "#2")}
    assert trace.frame.select("node", "status", "run_id").rows()[:2] == [
        ("scaled", "computed", run.run_id),
        ("Join", "not at hand", None),
    ]
    assert _impact(fresh.impact("b", record_id="#1")) == {
        ("Join", "not at hand", None),
        ("scaled", "computed", "k=1"),
    }


def test_a_changed_source_value_traces_to_the_call_and_run_of_the_current_row(
    tmp_path: Path,
) -> None:
    """Records are shared by every input version: the row at hand names its own call."""

    def build(x: int) -> Pipeline:
        a = DictSource([{"k": 1, "x": x}], tag_columns=["k"], label="a", source_id="a")
        with Pipeline("p", store=DeltaStore(tmp_path / "store")) as p:
            double.pod(a)
        return p

    first = build(1).run()
    second_pipeline = build(5)
    second = second_pipeline.run()
    assert first.run_id != second.run_id
    steps = second_pipeline.trace("double", k=1).frame.to_dicts()
    assert (steps[0]["status"], steps[0]["run_id"]) == ("computed", second.run_id)
    assert json.loads(steps[1]["values"]) == {"k": 1, "x": 5}
    again = build(1)  # back to the first value: the first run's call, read from the store
    assert again.trace("double", k=1).frame["run_id"][0] == first.run_id
    # Without the code the input cannot be read: a read serves both values' results, and
    # the trace does not pick one.
    loaded = podline.open_pipeline(DeltaStore(tmp_path / "store"), "p", code=False)
    assert loaded.nodes["double"].as_table().num_rows == 2
    assert loaded.trace("double", k=1).frame["status"].to_list() == ["ambiguous", "unreadable"]


def test_a_row_whose_positional_record_id_another_version_reused_keeps_its_own_tags(
    tmp_path: Path,
) -> None:
    """A file listing gains a file at the front: positional record ids shift, so one id
    names other rows in the two versions. Traced without the code, each row shows its own
    tags, not those of the row that held its record id in the other version."""

    def build(keys: list[int]) -> Pipeline:
        files = DictSource(
            [{"k": k, "x": k} for k in keys], tag_columns=["k"], label="a", source_id="files"
        )
        with Pipeline("p", store=DeltaStore(tmp_path / "store")) as p:
            double.pod(files)
        return p

    build([2, 3]).run()  # k=2 is #0, k=3 is #1
    build([1, 2, 3]).run()  # k=1 is #0, k=2 is #1, k=3 is #2
    loaded = podline.open_pipeline(DeltaStore(tmp_path / "store"), "p", code=False)
    steps = loaded.trace("double", k=2).frame.to_dicts()
    functions = [step for step in steps if step["node"] == "double"]
    assert len(functions) == 2
    assert [step["tags"] for step in functions] == ["k=2", "k=2"]
    # Each row's own call: the one record of its own tags, no longer ambiguous.
    assert [step["status"] for step in functions] == ["computed", "cached"]


def test_row_is_the_node_s_row_as_a_read_gives_it_before_any_read(tmp_path: Path) -> None:
    """``row=i`` on a fresh pipeline object (or one opened from the store) reads the node,
    computing nothing, as ``as_table()`` would; the title names the row."""
    run = _study(DeltaStore(tmp_path / "store")).run()
    fresh = _study(DeltaStore(tmp_path / "store"))
    first = fresh.trace("scaled", row=0)
    assert str(first).splitlines()[0] == "trace of scaled, row 0: 1 row(s)"
    assert first.frame.select("node", "status", "run_id").rows()[0] == (
        "scaled",
        "computed",
        run.run_id,
    )
    read = _study(DeltaStore(tmp_path / "store"))
    rows = read.nodes["scaled"].as_table()
    assert read.trace("scaled", row=0).frame.to_dicts() == first.frame.to_dicts()
    assert first.frame["tags"][0] == f"k={rows.column('k')[0].as_py()}"
    loaded = podline.open_pipeline(DeltaStore(tmp_path / "store"), "study", code=False)
    assert loaded.trace("scaled", row=0).frame["tags"][0] == first.frame["tags"][0]
    with pytest.raises(InputValidationError, match="'scaled' has no row 3: a read of it gives 3"):
        _study(DeltaStore(tmp_path / "store")).trace("scaled", row=3)
    with pytest.raises(InputValidationError, match="give row=0 or tag values"):
        fresh.trace("scaled", row=0, k=1)


def test_row_of_an_operator_node_that_logs_its_rows_reads_them(tmp_path: Path) -> None:
    """``row=i`` at an operator node in LOG mode that has not run here picks among the rows
    its runs logged, as a trace by tag values does (user test: it said the node stores no
    rows and to put it in LOG mode, which it was)."""

    def build() -> Pipeline:
        a = _src("a", "x", [1, 2, 3])
        with Pipeline("logged", DeltaStore(tmp_path / "store"), cache_modes={"big": "log"}) as p:
            double.pod(a).filter(pl.col("y") > 2, label="big")
        return p

    build().run()
    fresh = build()
    by_row = fresh.trace("big", row=1)
    assert str(by_row).splitlines()[0] == "trace of big, row 1: 1 row(s)"
    tags = by_row.frame["tags"][0]
    assert tags in ("k=2", "k=3")
    by_tags = build().trace("big", k=int(tags[2:]))
    assert by_row.frame.drop("row").to_dicts() == by_tags.frame.drop("row").to_dicts()
    with pytest.raises(InputValidationError, match="'big' has no row 2: a read of it gives 2"):
        build().trace("big", row=2)
    with Pipeline("unlogged", DeltaStore(tmp_path / "store")) as off:
        double.pod(_src("a", "x", [1, 2, 3])).filter(pl.col("y") > 2, label="big")
    off.run()
    with Pipeline("unlogged", DeltaStore(tmp_path / "store")) as off:
        double.pod(_src("a", "x", [1, 2, 3])).filter(pl.col("y") > 2, label="big")
    with pytest.raises(PipelineError, match="'big' are not at hand"):
        off.trace("big", row=0)


def test_trace_and_impact_answer_for_the_current_rows_before_and_after_a_read(
    tmp_path: Path,
) -> None:
    """A source value that changed over runs leaves one record per input version: a trace by
    tags finds the node's current row (what a read gives), whether or not the node was read,
    and impact lists no row the current input no longer gives."""
    csv = tmp_path / "rows.csv"

    def build(source_id: str | None = None) -> Pipeline:
        rows = podline.CSVSource(csv, tag_columns=["k"], label="rows", source_id=source_id)
        with Pipeline("p", store=DeltaStore(tmp_path / str(source_id))) as p:
            double.pod(rows.filter(pl.col("x") > 0, label="kept"))
        return p

    for x in (1, 5, 9):  # the source id follows the file's content: new records each run
        csv.write_text(f"k,x\n1,{x}\n2,2\n")
        last = build().run()
    fresh, read = build(), build()
    read.nodes["double"].as_table()
    traced = fresh.trace("double", k=1).frame.to_dicts()
    assert traced == read.trace("double", k=1).frame.to_dicts()
    assert [(s["node"], s["status"], s["run_id"]) for s in traced] == [
        ("double", "computed", last.run_id),
        ("kept", "not at hand", None),
        ("rows", "read", None),
    ]
    assert json.loads(traced[2]["values"]) == {"k": 1, "x": 9}
    assert fresh.impact("rows", k=1).frame.to_dicts() == read.impact("rows", k=1).frame.to_dicts()
    # A source id that stays: k=1's record of the first run names the same source record,
    # which the filter now drops; no current row of double holds it.
    build("rows").run()
    csv.write_text("k,x\n1,0\n2,2\n")
    stopped = build("rows")
    assert stopped.trace("double", k=1).frame.select("node", "status").rows() == [
        ("kept", "filtered"),
        ("rows", "read"),
    ]
    assert _impact(stopped.impact("rows", record_id="#0")) == {
        ("kept", "not at hand", None),
        ("double", "not computed", None),
    }


def test_a_few_rows_of_a_fresh_node_are_what_a_whole_read_gives_them(tmp_path: Path) -> None:
    """A fresh object finds a function node's rows by picking its input's rows and looking
    up their results alone (``NodeRows._picked``), not by reading the whole node: the rows
    must be the ones a whole read gives, with skipped calls, a result invalidated, records of
    an older input version and tags the node lacks among them."""
    keys = list(range(8))

    def build(scale: int) -> Pipeline:
        with Pipeline("p", store=DeltaStore(tmp_path / "store")) as p:
            odd_only.pod(double.pod(_src("a", "x", keys, scale)))
        return p

    build(1).run()
    build(3).run()  # the records of scale 1 stay beside the current ones
    build(3).nodes["odd_only"].invalidate(k=5)
    for label in ("double", "odd_only"):
        picked, whole = build(3), build(3)
        held = whole.nodes[label].as_table(system_tags=True, source_info=True)
        system = [c for c in held.column_names if c.startswith("__tag:")]
        assert held.num_rows
        assert system
        for k in [*keys, 99]:
            wheres = [{"k": k}]
            rows = held.filter(pa.compute.equal(held.column("k"), k))
            if rows.num_rows:
                wheres.append({c: rows.column(c)[0].as_py() for c in ("k", *system)})
            for where in wheres:
                node = picked.nodes[label]
                got = lineage_rows.NodeRows()._picked(node, where)
                assert got is not None
                assert got.to_pylist() == lineage_rows.select(held, where).to_pylist(), (label, k)
        # k=5 invalidated, k in {0, 1, 4} skipped at scale 3 (y = 6k: y // 2 odd for odd k)
        if label == "odd_only":
            assert sorted(held.column("k").to_pylist()) == [1, 3, 7]
    # An output column is not the input's: a whole read answers.
    assert lineage_rows.NodeRows()._picked(build(3).nodes["double"], {"y": 6}) is None


def test_a_picked_node_reads_its_input_once_until_it_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later traces on the same object pick from the input read for the first; a run in
    between (outputs let go: ``materialize_results=False``) makes the next trace read the
    input again, as a whole read would (the upstream's results may have changed)."""
    from podline.nodes import kinds

    def build() -> Pipeline:
        with Pipeline("p", store=DeltaStore(tmp_path / "store")) as p:
            odd_only.pod(double.pod(_src("a", "x", [1, 2, 3])))
        return p

    build().run()
    reads: list[str] = []
    real = kinds.read_inputs

    def counted(node: Any) -> Any:
        reads.append(node.label)
        return real(node)

    monkeypatch.setattr(kinds, "read_inputs", counted)
    p = build()
    assert p.trace("odd_only", k=1).frame["status"][0] == "computed"
    assert p.trace("odd_only", k=3).frame["status"][0] == "computed"
    assert reads.count("odd_only") == 1
    p.nodes["double"].invalidate(k=3)
    p.run(materialize_results=False)
    assert not p.nodes["odd_only"].has_output
    assert p.trace("odd_only", k=3).frame["status"][0] == "computed"
    assert reads.count("odd_only") == 2


@pytest.mark.parametrize("fresh", [False, True])
def test_a_trace_through_tag_renames_reaches_the_source_row(tmp_path: Path, fresh: bool) -> None:
    """Tag values are compared with the upstream's rows by the upstream's names: through a
    MapTags swapping two names, the source row (a=0, b=10) is the traced row (b=0, a=10)."""
    rows = [{"a": i, "b": 10 + i, "x": i} for i in range(3)]

    def build() -> Pipeline:
        source = DictSource(rows, tag_columns=["a", "b"], source_id="s", label="src")
        with Pipeline("p", store=DeltaStore(tmp_path / "store")) as p:
            double.pod(source.map_tags({"a": "b", "b": "a"}, label="swapped"))
        return p

    ran = build()
    ran.run()
    p = build() if fresh else ran
    steps = p.trace("double", a=10, b=0).frame
    assert steps["node"].to_list() == ["double", "swapped", "src"]
    assert steps["status"].to_list()[-1] == "read"
    assert json.loads(steps["values"][-1]) == {"a": 0, "b": 10, "x": 0}


_MAKE = """
import podline
from podline import function_pod
from podline.stores import DeltaStore


@function_pod("y")
def double(x: int) -> int:
    return 2 * x


rows = podline.CSVSource("rows.csv", tag_columns=["k"], source_id="rows", label="rows")
with podline.Pipeline("p", store=DeltaStore("store")) as p:
    double.pod(rows)
print(p.run().run_id)
"""

_READ = """
import json, sys
import podline
from podline.stores import DeltaStore

p = podline.open_pipeline(DeltaStore("store"), "p", code=sys.argv[1] == "code")
trace = p.trace("double", k=2).frame
impact = p.impact("rows", record_id="#1").frame
print(json.dumps({"trace": trace.select("node", "status", "run_id", "values").rows(),
                  "impact": impact.select("node", "status", "tags", "source_id").rows()}))
"""


@pytest.mark.parametrize("code", ["code", "nocode"])
def test_open_pipeline_in_a_fresh_process_traces_from_the_store(tmp_path: Path, code: str) -> None:
    """The store alone: a fresh process opens the pipeline by name (with its code, its CSV
    source is read again; without, the source is unreadable but its records still named)."""
    if not hasattr(podline, "open_pipeline"):
        pytest.skip("needs podline.open_pipeline (save/load, branch saveload)")
    (tmp_path / "rows.csv").write_text("k,x\n1,1\n2,2\n")
    (tmp_path / "make.py").write_text(_MAKE)
    (tmp_path / "read.py").write_text(_READ)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done

    run = python("make.py")
    read = python("read.py", code)
    found = json.loads(read.stdout)
    run_id = run.stdout.strip()
    values = json.dumps({"k": 2, "x": 2}) if code == "code" else None
    status = "read" if code == "code" else "unreadable"
    assert found["trace"] == [["double", "computed", run_id, None], ["rows", status, None, values]]
    source_id = "rows" if code == "code" else None
    assert found["impact"] == [["double", "computed", "k=2", source_id]]


def test_renderings_and_errors() -> None:
    p = _study(MemoryStore())
    p.run()
    trace = p.trace("scaled", k=1)
    text = str(trace)
    assert text.splitlines()[0] == "trace of scaled, k=1: 1 row(s)"
    assert "    ├── a [source: DictSource] read  (k=1)  record a-id/#1: k=1, x=1" in text
    assert "    └── b [source: DictSource] read  (k=1)  record b-id/#1: k=1, z=1" in text
    assert "<li>" in trace._repr_html_()
    assert "a-id/#1" in trace._repr_html_()
    impact = p.impact("a", record_id="#1")
    assert "record a-id/#1" in str(impact)
    assert "<table>" in impact._repr_html_()
    with pytest.raises(PipelineError, match="names no node: 'nope'"):
        p.trace("nope")
    with pytest.raises(InputValidationError, match="no tag column"):
        p.trace("scaled", subject="x")
    with pytest.raises(PipelineError, match="names no source: 'scaled'"):
        p.impact("scaled", record_id="#0")
    with pytest.raises(InputValidationError, match="has no row 9"):
        p.trace("scaled", row=9)


def test_impact_of_a_record_no_row_holds_is_an_error(tmp_path: Path) -> None:
    """A record id that names nothing is an error saying so, not an empty answer, nor (from
    the store alone) a list of nodes that have "not computed" it (user test: that read as a
    config that never trained)."""
    run = _study(DeltaStore(tmp_path / "store"))
    run.run()
    with pytest.raises(InputValidationError, match="source 'a' has no record with record_id='#99'"):
        run.impact("a", record_id="#99")
    with pytest.raises(InputValidationError, match="source 'a' has no record with k=99"):
        run.impact("a", k=99)
    loaded = podline.open_pipeline(DeltaStore(tmp_path / "store"), "study", code=False)
    assert loaded.impact("a", record_id="#1").frame.height > 0
    with pytest.raises(InputValidationError, match="no stored row below source 'a' holds"):
        loaded.impact("a", record_id="#99")


# ----------------------------------------------------------------------------- property


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[list[list[int]], list[tuple[str, Any]]]:
    """Sources (the keys each holds) and a list of steps: join two earlier streams, or batch
    one (batching last, since a batch's list tags join nothing)."""
    keys = st.lists(st.integers(0, 5), unique=True, min_size=1, max_size=5)
    sources = draw(st.lists(keys, min_size=2, max_size=3))
    steps: list[tuple[str, Any]] = []
    count = len(sources)
    for _ in range(draw(st.integers(1, 3))):
        left, right = draw(st.integers(0, count - 1)), draw(st.integers(0, count - 1))
        if left != right:
            steps.append(("join", (left, right)))
            count += 1
    steps.append(("batch", (draw(st.integers(0, count - 1)), draw(st.integers(1, 3)))))
    return sources, steps


@settings(
    max_examples=int(os.environ.get("LINEAGE_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(pipelines())
def test_trace_and_impact_agree_with_the_values_that_formed_each_row(
    case: tuple[list[list[int]], list[tuple[str, Any]]],
) -> None:
    sources, steps = case
    # Every packet value names its own record: column v<i> of source i holds "<i>:<key>".
    streams: list[Any] = [
        DictSource(
            [{"k": k, f"v{i}": f"{i}:{k}"} for k in keys],
            tag_columns=["k"],
            label=f"s{i}",
            source_id=f"s{i}",
        )
        for i, keys in enumerate(sources)
    ]
    with Pipeline("prop", store=MemoryStore()) as p:
        for n, (kind, args) in enumerate(steps):
            if kind == "join":
                left, right = streams[args[0]], streams[args[1]]
                if set(left.keys()[1]) & set(right.keys()[1]):
                    # Both hold a source's values (a join would refuse): join nothing, so
                    # that every record a row names has a value in the row.
                    streams.append(left)
                    continue
                streams.append(left.join(right, label=f"j{n}"))
            else:
                streams.append(streams[args[0]].batch(args[1], label=f"b{n}"))
    p.run()
    forward: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for node in p.nodes.values():
        if node.node_type == "source":
            continue
        table = node.as_table()
        for i in range(table.num_rows):
            formed = _formed_by(table.slice(i, 1).to_pylist()[0])
            traced = {
                (s, sources[int(s[1:])][int(r[1:])])
                for _, s, r in _records(p.trace(node.label, row=i))
            }
            assert traced == formed, node.label
            tags = ", ".join(f"k={v!r}" for v in [table.column("k")[i].as_py()])
            for source, key in traced:
                forward.setdefault((source, key), set()).add((node.label, tags))
    for i, keys in enumerate(sources):
        if f"s{i}" not in p.nodes:
            continue  # a source no step used
        for position in range(len(keys)):
            found = p.impact(f"s{i}", record_id=f"#{position}").frame
            present = {(r["node"], r["tags"]) for r in found.iter_rows(named=True) if r["tags"]}
            assert present == forward.get((f"s{i}", keys[position]), set())


def _formed_by(row: dict[str, Any]) -> set[tuple[str, Any]]:
    """The (source, key) of every value in a row's packet columns (lists after a batch)."""
    formed = set()
    for name, value in row.items():
        if name.startswith("v"):
            for text in value if isinstance(value, list) else [value]:
                source, key = text.split(":")
                formed.add((f"s{source}", int(key)))
    return formed


@given(
    lists=st.lists(
        st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=3)),
        max_size=12,
    ),
    value=st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=3)),
)
def test_list_tags_compare_as_python_lists(lists: list[Any], value: Any) -> None:
    # A batch's tags are lists: a row matches a traced value exactly when Python's == says so.
    column = pa.chunked_array([lists[:5], lists[5:]], pa.list_(pa.int64()))
    assert lineage_rows._equal(column, value).tolist() == [v == value for v in lists]
