"""Save and load (#20.1): the stored specification, ``save``/``load``, ``open_pipeline``, and
read-only loading when the user's code cannot be imported.

"Without the code" is tested honestly: a fresh interpreter whose ``sys.path`` does not hold
the user's project. Within this process, the user's module is made unimportable by taking its
directory off ``sys.path`` and forgetting it (``ModuleTree.forget``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.conftest import ModuleTree

import podline
from podline import DeltaStore, DictSource, MemoryStore, Pipeline, ReadOnlyNodeError, open_pipeline
from podline.errors import PipelineError
from podline.pipeline import lineage_rows
from podline.pipeline.loading import LoadedPipeline
from podline.pipeline.spec import SPEC_FORMAT, SPEC_VERSION, spec_text

STEPS = """
    import polars as pl
    from podline import CSVSource, Pipeline, function_pod


    @function_pod("doubled")
    def double(x: int) -> int:
        print(f"doubling {x}")
        return 2 * x


    @function_pod("total")
    def add(doubled: int, y: int) -> int:
        return doubled + y


    def build(store, csv, result_store=None):
        table = CSVSource(csv, tag_columns="id", label="table")
        pipeline = Pipeline("study", store=store, result_store=result_store)
        with pipeline:
            doubled = double.pod(table.select_packet_columns("x"), label="double")
            kept = table.filter(pl.col("y") >= 0, constraints={"z": "a"}).select_packet_columns(
                "y"
            )
            add.pod(doubled.join(kept), label="add")
        return pipeline
"""

CSV = "id,x,y,z\n1,10,1,a\n2,20,2,a\n3,30,3,b\n4,40,-4,a\n"


@pytest.fixture
def project(user_project: ModuleTree, tmp_path: Path) -> dict[str, Path]:
    user_project.write("steps.py", STEPS)
    csv = tmp_path / "data.csv"
    csv.write_text(CSV)
    return {"root": user_project.root, "csv": csv, "store": tmp_path / "store"}


def _fresh(code: str, *, path: list[Path], cwd: Path) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter whose import path is ``path`` plus podline's;
    returns the JSON it prints last."""
    podline_src = str(Path(podline.__file__).parents[1])
    tests_root = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in path), podline_src, tests_root])
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def _run_study(project: dict[str, Path], user_project: ModuleTree) -> Pipeline:
    steps = user_project.load("steps")
    with DeltaStore(project["store"]) as store:
        pipeline: Pipeline = steps.build(store, str(project["csv"]))
        result = pipeline.run()
    assert result.counts["add"].computed == 2
    return pipeline


def test_a_fresh_process_with_the_code_opens_a_working_pipeline(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    original = _run_study(project, user_project)
    found = _fresh(
        f"""
        import json, warnings
        warnings.simplefilter("error")  # nothing changed: loading must not warn
        import podline
        with podline.DeltaStore({str(project["store"])!r}) as store:
            p = podline.open_pipeline(store, "study")
            result = p.run()
            print(json.dumps({{
                "uri": p.uri, "read_only": p.read_only, "changed": p.changed,
                "counts": {{k: [c.computed, c.cached] for k, c in result.counts.items()}},
                "add": p.add.as_table().sort_by("id").to_pylist(),
                "labels": list(p.nodes),
            }}))
        """,
        path=[project["root"]],
        cwd=project["root"].parent,
    )
    assert found["uri"] == original.uri
    assert found["read_only"] == {}
    assert found["changed"] == {}
    assert found["labels"] == list(original.nodes)
    assert found["counts"]["double"] == [0, 4]
    assert found["counts"]["add"] == [0, 2]
    assert found["add"] == [{"id": 1, "total": 21}, {"id": 2, "total": 42}]


def test_a_fresh_process_without_the_code_reads_everything_and_refuses_to_run(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    original = _run_study(project, user_project)
    found = _fresh(
        f"""
        import json
        import podline
        with podline.DeltaStore({str(project["store"])!r}) as store:
            p = podline.open_pipeline(store, "study")
            try:
                p.run()
                error = None
            except podline.ReadOnlyNodeError as exc:
                error = str(exc)
            print(json.dumps({{
                "uri": p.uri, "read_only": p.read_only, "error": error,
                "add": p.add.as_table().sort_by("id").to_pylist(),
                "double": p.double.as_table().sort_by("id").to_pylist(),
                "status": p.status().height, "runs": p.runs().height,
                "logs": sorted(p.logs(node="double")["stdout"].to_list()),
                "repr": repr(p),
            }}))
        """,
        path=[],
        cwd=project["root"].parent,
    )
    assert found["uri"] == original.uri
    assert found["add"] == [{"id": 1, "total": 21}, {"id": 2, "total": 42}]
    assert [row["doubled"] for row in found["double"]] == [20, 40, 60, 80]
    assert found["status"] == 6
    assert found["runs"] >= 1
    assert found["logs"] == [f"doubling {x}\n" for x in (10, 20, 30, 40)]
    # The CSV source is read again and podline's operators built: only the functions'
    # nodes (and the join between them) are read-only.
    assert set(found["read_only"]) == {"double", "Join", "add"}
    assert "steps:double cannot be imported" in found["read_only"]["double"]
    assert "steps:add cannot be imported" in found["read_only"]["add"]
    assert found["error"] is not None
    assert "'double': function steps:double" in found["error"]
    assert "Pipeline('study'" in found["repr"]
    assert "double" in found["repr"]


def test_saved_json_loads_in_a_fresh_process_with_its_store(
    project: dict[str, Path], user_project: ModuleTree, tmp_path: Path
) -> None:
    original = _run_study(project, user_project)
    saved = original.save(tmp_path / "study.json")
    spec = json.loads(saved.read_text())
    assert spec["format"] == SPEC_FORMAT
    assert spec["version"] == SPEC_VERSION
    assert spec["store"] == f"file://{project['store']}"  # the store travels with the file
    found = _fresh(
        f"""
        import json
        from podline import Pipeline
        p = Pipeline.load({str(saved)!r})
        print(json.dumps({{"uri": p.uri, "read_only": p.read_only,
                          "add": p.add.as_table().sort_by("id").to_pylist()}}))
        """,
        path=[project["root"]],
        cwd=tmp_path,
    )
    assert found == {
        "uri": original.uri,
        "read_only": {},
        "add": [{"id": 1, "total": 21}, {"id": 2, "total": 42}],
    }


def test_the_specification_text_is_stable_and_ordered(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    first = _run_study(project, user_project)
    again = user_project.load("steps").build(MemoryStore(), str(project["csv"]))
    text = spec_text(first.specification())
    assert spec_text(again.specification()) == text  # another store, another build
    spec = json.loads(text)
    assert list(spec) == sorted(spec)  # keys sorted at every level
    labels = [node["label"] for node in spec["nodes"]]
    assert labels == list(first.nodes)  # compile (topological) order
    by_label = {node["label"]: node for node in spec["nodes"]}
    assert by_label["double"]["function"]["module"] == "steps"
    assert by_label["double"]["function"]["qualname"] == "double"
    assert by_label["double"]["function"]["code_hash"].startswith("pod")
    assert by_label["double"]["upstreams"] == ["SelectPacketColumns"]
    assert by_label["table"]["source"]["rebuild"]["path"] == str(project["csv"])
    assert by_label["Filter"]["operator"]["parameters"]["constraints"] == {"z": "a"}
    assert by_label["add"]["packets"]["columns"] == [["total", "int"]]
    assert next(name for name, _ in by_label["table"]["tags"]["columns"]) == "id"


def test_runs_store_each_distinct_specification_once(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    store = MemoryStore()
    steps = user_project.load("steps")
    pipeline = steps.build(store, str(project["csv"]))
    for _ in range(3):
        pipeline.run()
    again = steps.build(store, str(project["csv"]))  # a new object, as in a new process
    again.run()
    specs = store.scan(("pipelines", "study", "specs"))
    assert specs is not None
    assert specs.column("uri").to_pylist() == [pipeline.uri]
    user_project.edit("steps.py", "return 2 * x", "return 3 * x")
    edited = user_project.load("steps").build(store, str(project["csv"]))
    edited.run()
    specs = store.scan(("pipelines", "study", "specs"))
    assert specs is not None
    assert sorted(specs.column("uri").to_pylist()) == sorted([pipeline.uri, edited.uri])
    # The latest run's specification opens; the older one by its URI.
    assert open_pipeline(store, "study", code=False).uri == edited.uri
    assert open_pipeline(store, pipeline.uri, code=False).uri == pipeline.uri


def test_the_latest_run_chooses_among_texts_of_one_uri(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    """A run of the steps as a script stores them as ``__main__:double``, one imported from
    their module as ``steps:double``, under one URI: the latest run's text is opened."""
    run = f"build(podline.DeltaStore({str(project['store'])!r}), {str(project['csv'])!r}).run()"
    script = user_project.root / "script.py"
    script.write_text(f"import podline\n{textwrap.dedent(STEPS)}\n\n{run}\n")

    def opened() -> dict[str, Any]:
        return _fresh(
            f"""
            import json, podline
            p = podline.open_pipeline(podline.DeltaStore({str(project["store"])!r}), "study")
            print(json.dumps({{"uri": p.uri, "read_only": sorted(p.read_only)}}))
            """,
            path=[project["root"]],
            cwd=project["root"].parent,
        )

    def as_script() -> None:
        completed = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(podline.__file__).parents[1])},
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr

    as_script()
    assert opened()["read_only"] == ["Join", "add", "double"]  # a script's: not importable
    with DeltaStore(project["store"]) as store:
        module_run = user_project.load("steps").build(store, str(project["csv"]))
        assert module_run.run().counts["add"].cached == 2  # the script's results: one identity
    assert opened() == {"uri": module_run.uri, "read_only": []}
    specs = DeltaStore(project["store"]).scan(("pipelines", "study", "specs"))
    assert specs is not None
    assert specs.column("uri").to_pylist() == [module_run.uri] * 2  # two texts, one URI
    as_script()
    assert opened()["read_only"] == ["Join", "add", "double"]


def test_loading_after_the_code_changed_warns_and_names_the_function(
    project: dict[str, Path], user_project: ModuleTree
) -> None:
    original = _run_study(project, user_project)
    user_project.edit("steps.py", "return 2 * x", "return 3 * x")
    user_project.forget()
    with DeltaStore(project["store"]) as store:
        with pytest.warns(UserWarning, match="steps:double"):
            loaded = open_pipeline(store, "study")
        assert loaded.uri != original.uri
        assert loaded.read_only == {}
        assert set(loaded.changed) == {"double", "Join", "add"}
        result = loaded.run()
    assert result.counts["double"].computed == 4
    assert result.counts["add"].computed == 2


def test_without_the_module_in_this_process_nodes_are_read_only(
    project: dict[str, Path], user_project: ModuleTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _run_study(project, user_project)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(user_project.root)])
    user_project.forget()
    with DeltaStore(project["store"]) as store:
        loaded = Pipeline.load("study", store=store)
        assert loaded.uri == original.uri
        # Sources and podline's operators live on; only the functions' nodes are read-only.
        assert set(loaded.read_only) == {"double", "Join", "add"}
        assert loaded.add.as_table().sort_by("id").column("total").to_pylist() == [21, 42]
        with pytest.raises(ReadOnlyNodeError, match="function steps:add cannot be imported") as e:
            loaded.run()
        # Each node's own reason once, and the nodes read-only for what they depend on by name.
        message = str(e.value)
        assert message.count("cannot be imported") == 2
        assert "depends on" not in message
        assert "; and downstream of them 'Join'. Their stored results" in message
        with pytest.raises(ReadOnlyNodeError, match="'double'"):
            loaded.plan()
        # Without reading the CSV either, a function node serves every result it stored.
        blind = open_pipeline(store, "study", code=False)
        assert "its source was not read again" in blind.read_only["table"]
        assert blind.add.as_table().sort_by("id").column("total").to_pylist() == [21, 42]
        assert len(blind.double) == 4


def test_sources_from_python_data_make_their_dependents_read_only() -> None:
    store = MemoryStore()
    source = DictSource([{"k": 1, "v": 2.0}], tag_columns="k", label="rows")
    pipeline = Pipeline("mem", store=store)
    with pipeline:
        source.filter(pl.col("v") > 0).map_packets({"v": "w"}, label="renamed")
    pipeline.run()
    loaded = open_pipeline(store, "mem")
    assert loaded.uri == pipeline.uri
    assert "DictSource" in loaded.read_only["rows"]
    assert loaded.read_only["renamed"] == "it depends on read-only node(s) 'Filter'"
    with pytest.raises(
        ReadOnlyNodeError, match=r"node 'rows'.*built from data or a function in memory"
    ):
        loaded.rows.as_table()
    with pytest.raises(ReadOnlyNodeError, match="'rows': its source"):
        loaded.run()


def test_below_a_node_serving_every_result_a_function_node_serves_every_result_too() -> None:
    """A batch of every result of every input version is none of the batches a node below
    saw: that node serves every result it stored too, as save-and-load.md says, instead of
    none (user test: ``podline show`` of a sweep's summary printed "(no rows)")."""

    def build(bump: int) -> Pipeline:
        rows = [{"k": k, "x": k + (bump if k == 0 else 0)} for k in range(4)]
        source = DictSource(rows, tag_columns="k", source_id="nums")
        with Pipeline("sums", store=store) as pipeline:
            squares = _square.pod(source, label="square")
            _total.pod(squares.batch(label="every"), label="total")
        return pipeline

    store = MemoryStore()
    for bump in (0, 10):
        assert build(bump).run().counts["total"].computed == 1
    loaded = open_pipeline(store, "sums", code=False)
    assert len(loaded.square) == 5  # every input version's results
    assert sorted(loaded.total.as_table().column("total").to_pylist()) == [14, 114]
    assert build(10).total.as_table().column("total").to_pylist() == [114]  # with the code
    # Lineage on a fresh object finds rows as that read gives them, not by picking rows of
    # an input it does not look up.
    fresh = open_pipeline(store, "sums", code=False)
    assert lineage_rows.NodeRows()._picked(fresh.total, {"k": [0, 1, 2, 3]}) is None
    found = lineage_rows.NodeRows().find(fresh.total, {"k": [0, 1, 2, 3]})
    assert found is not None
    assert sorted(found.column("total").to_pylist()) == [14, 114]


@podline.function_pod("squared")
def _square(x: int) -> int:
    return x * x


@podline.function_pod("total")
def _total(squared: list[int]) -> int:
    return sum(squared)


def test_open_names_what_the_store_holds() -> None:
    store = MemoryStore()
    with pytest.raises(PipelineError, match=r"holds no specification of pipeline 'x'.*none"):
        open_pipeline(store, "x")
    pipeline = Pipeline("mem", store=store)
    with pipeline:
        DictSource([{"k": 1, "v": 2.0}], tag_columns="k").map_packets({"v": "w"})
    pipeline.run()
    with pytest.raises(PipelineError, match="pipelines stored: 'mem'"):
        open_pipeline(store, "x")
    with pytest.raises(PipelineError, match="no stored specification of 'mem@0000"):
        open_pipeline(store, "mem@0000000000000000")


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    pipeline = Pipeline("mem", store=store)
    with pipeline:
        DictSource([{"k": 1, "v": 2.0}], tag_columns="k").map_packets({"v": "w"})
    path = pipeline.save(tmp_path / "p.json")
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "version": SPEC_VERSION + 1}))
    with pytest.raises(PipelineError, match="upgrade podline"):
        Pipeline.load(path, store=store)
    path.write_text(json.dumps({"nodes": []}))
    with pytest.raises(PipelineError, match="not a podline pipeline specification"):
        Pipeline.load(path, store=store)


def test_repr_shows_name_store_and_nodes() -> None:
    store = MemoryStore()
    pipeline = Pipeline("shown", store=store)
    assert "not compiled" in repr(pipeline)
    with pipeline:
        DictSource([{"k": 1, "v": 2.0}], tag_columns="k", label="rows").map_packets({"v": "w"})
    text = repr(pipeline)
    assert text.splitlines()[0] == f"Pipeline('shown', store={store.to_config()!r}): 2 nodes"
    assert text.splitlines()[1].split() == ["rows", "source"]
    assert text.splitlines()[2].split() == ["MapPackets", "operator", "<-", "rows"]


def test_a_separate_result_store_is_found_again(
    project: dict[str, Path], user_project: ModuleTree, tmp_path: Path
) -> None:
    steps = user_project.load("steps")
    with DeltaStore(tmp_path / "pipes") as store, DeltaStore(tmp_path / "results") as results:
        separate: Pipeline = steps.build(store, str(project["csv"]), result_store=results)
        separate.run()
    assert separate.specification()["result_store"] == results.to_config()
    with DeltaStore(tmp_path / "pipes") as store:
        opened = open_pipeline(store, "study", code=False)
        assert opened.result_store.to_config() == results.to_config()
        assert opened.add.as_table().sort_by("id").column("total").to_pylist() == [21, 42]


def test_a_function_of_a_notebook_is_read_only_saying_so() -> None:
    # A notebook's functions are __main__'s too: the reason named only scripts.
    from podline.pipeline.loading import _imported, _NotRebuiltError

    with pytest.raises(_NotRebuiltError, match=r"__main__:f was defined in a notebook"):
        _imported("__main__:f", "function")


def test_a_read_only_node_serves_the_stored_runs_rows_not_every_version(
    tmp_path: Path,
) -> None:
    """A file that grew between runs (the default source id, made of its content, changes,
    and with it every row's entry): the store holds the results of both versions' rows, and
    a read that cannot read the file again (``podline show``: ``code=False``) showed every
    row of the first version twice. The specification keeps the source id its run stamped:
    the read serves the rows of that run."""
    data = tmp_path / "data.csv"
    data.write_text("k,x\n1,10\n2,20\n")
    store = DeltaStore(tmp_path / "store")

    def run() -> Pipeline:
        with Pipeline("grow", store=store) as pipeline:
            joined = podline.CSVSource(data, ["k"], label="data").join(
                DictSource([{"k": k, "w": 2 * k} for k in (1, 2, 3)], "k", label="weights")
            )
            _square.pod(joined.map_packets({"x": "x"}, drop_unmapped=True), label="square")
        pipeline.run()
        return pipeline

    run()
    with data.open("a") as f:
        f.write("3,30\n")
    assert run().square.as_table().num_rows == 3
    blind = open_pipeline(store, "grow", code=False)
    shown = blind.square.as_table().sort_by("k")
    assert shown.column("k").to_pylist() == [1, 2, 3]
    assert shown.column("squared").to_pylist() == [100, 400, 900]
    # A specification written before podline recorded the source id: every version's rows.
    for node in blind.spec["nodes"]:
        node.pop("source_id", None)
    older = LoadedPipeline(blind.spec, store, code=False)
    assert older.square.as_table().num_rows == 5
