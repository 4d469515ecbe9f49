"""The run manifest (what a run ran on) and the code records kept for every function."""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import podline
from conftest import ModuleTree
from podline.functions import describe_code
from podline.observability import manifest as manifest_module
from podline.pipeline import Pipeline
from podline.stores import RECORD_ID, DeltaStore, Store

PIPE = """
import numpy as np
from podline import function_pod


@function_pod("root", live_output=False)
def root(x: int) -> float:
    return float(np.sqrt(x))


@function_pod("same", live_output=False, depends_on=["pyarrow"])
def same(x: int) -> int:
    return x
"""

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="needs git")


def pipeline_of(project: ModuleTree, store: Store, name: str = "manifest") -> Pipeline:
    module = project.load("pipe")
    source = podline.DictSource([{"id": i, "x": i} for i in range(3)], tag_columns=["id"])
    with Pipeline(name, store, observe=False) as pipeline:
        module.root.pod(source)
        module.same.pod(source)
    return pipeline


@pytest.fixture
def project(user_project: ModuleTree) -> ModuleTree:
    user_project.write("pipe.py", PIPE)
    return user_project


def git(cwd: Path, *args: str) -> str:
    assert GIT is not None
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        [GIT, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_runs_show_the_manifest(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository
    pipeline = pipeline_of(project, store)
    pipeline.run()
    run = pipeline.runs().row(0, named=True)
    assert run["podline_version"] == podline.__version__
    assert run["hash_scheme"] == podline.HASH_SCHEME
    assert run["python_version"] == platform.python_version()
    assert run["python_implementation"] == platform.python_implementation()
    assert run["platform"] == platform.platform()
    # numpy: imported by a function; pyarrow: named in depends_on.
    assert run["packages"] == [f"numpy=={np.__version__}", f"pyarrow=={pa.__version__}"]
    assert run["git_commit"] is None
    assert run["git_dirty"] is None


@needs_git
def test_the_manifest_names_the_commit_and_whether_the_tree_was_dirty(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "analysis.txt").write_text("v1\n")
    git(repo, "add", "analysis.txt")
    git(repo, "commit", "-q", "-m", "first")
    monkeypatch.chdir(repo)
    pipeline = pipeline_of(project, store)

    def latest() -> tuple[str | None, bool | None]:
        pipeline.run()
        run = pipeline.runs().row(0, named=True)
        return run["git_commit"], run["git_dirty"]

    head = git(repo, "rev-parse", "HEAD")
    assert latest() == (head, False)
    (repo / "notes.txt").write_text("untracked files do not count\n")
    assert latest() == (head, False)
    (repo / "analysis.txt").write_text("v2\n")
    assert latest() == (head, True)
    history = pipeline.runs()
    assert history["git_dirty"].to_list() == [True, False, False]  # newest first


def test_a_run_finds_package_versions_and_the_platform_in_the_background(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lookups that take time (installed metadata, ``uname -p``) run beside the run, not
    # in the thread that runs it; the manifest is the one found inline.
    monkeypatch.chdir(tmp_path)
    pipeline = pipeline_of(project, store)
    caller = threading.get_ident()
    threads: list[int] = []
    found = manifest_module.package_versions

    def versions(names: Iterable[str]) -> dict[str, str]:
        threads.append(threading.get_ident())
        return found(names)

    monkeypatch.setattr(manifest_module, "package_versions", versions)
    pipeline.run()
    assert threads
    assert caller not in threads
    functions = pipeline.graph.packet_functions().values() if pipeline.graph else []
    inline = manifest_module.run_manifest(functions, (None, None))
    run = pipeline.runs().row(0, named=True)
    assert (
        run["packages"]
        == list(inline.packages)
        == [
            f"numpy=={np.__version__}",
            f"pyarrow=={pa.__version__}",
        ]
    )
    assert run["platform"] == inline.platform == platform.platform()


def fake_git(directory: Path, script: str) -> None:
    directory.mkdir()
    target = directory / "git"
    target.write_text(f"#!/bin/sh\n{script}\n")
    target.chmod(target.stat().st_mode | stat.S_IEXEC)


@needs_git
def test_git_is_asked_once_per_run(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.log"
    fake_git(tmp_path / "bin", f'echo "$@" >> {calls}\nexec {GIT} "$@"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    pipeline = pipeline_of(project, store)
    for _ in range(3):
        pipeline.run()
    assert len(calls.read_text().splitlines()) == 3


def test_runs_go_on_without_git(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git at all
    pipeline = pipeline_of(project, store)
    assert pipeline.run().counts["root"].computed == 3
    run = pipeline.runs().row(0, named=True)
    assert (run["git_commit"], run["git_dirty"]) == (None, None)
    # A git that fails, and one that hangs, are the same as no git.
    fake_git(tmp_path / "failing", "echo broken >&2; exit 3")
    assert manifest_module.git_state(str(tmp_path)) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "failing"))
    assert manifest_module.git_state(str(tmp_path)) == (None, None)
    fake_git(tmp_path / "hanging", "sleep 30")
    monkeypatch.setenv("PATH", str(tmp_path / "hanging"))
    monkeypatch.setattr(manifest_module, "_GIT_SECONDS", 0.2)
    assert manifest_module.git_state(str(tmp_path)) == (None, None)


def test_runs_recorded_before_manifests_existed_read_as_null(store: Store) -> None:
    # A run record as earlier versions wrote it: counts, no manifest columns.
    old = {
        RECORD_ID: "r1/node/x",
        "run_id": "r1",
        "pipeline_uri": "p@1",
        "node": "node",
        "computed": 1,
        "cached": 0,
        "skipped": 0,
        "failed": 0,
        "rows": 1,
        "seconds": 0.5,
        "finished_at": pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py(),
    }
    store.append(("pipelines", "old", "runs"), pa.Table.from_pylist([old]))
    runs = podline.observability.inspect(store, "old").runs()
    assert runs["computed"].to_list() == [1]
    assert runs["python_version"].to_list() == [None]
    assert runs.schema["packages"] == pl.List(pl.String)


def test_run_records_read_back_with_delta_rs(
    project: ModuleTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with DeltaStore(tmp_path / "store") as store:
        pipeline_of(project, store).run()
        uri = store.table_uri(("pipelines", "manifest", "runs"))
    table = DeltaTable(uri).to_pyarrow_table()
    assert set(table.column("python_version").to_pylist()) == {platform.python_version()}
    assert table.column("packages").to_pylist()[0] == [
        f"numpy=={np.__version__}",
        f"pyarrow=={pa.__version__}",
    ]


def test_code_records_keep_each_computed_function_version_once(
    project: ModuleTree, store: Store
) -> None:
    pipeline = pipeline_of(project, store)
    pipeline.run()
    pipeline_of(project, store, name="other").run()  # all cached: nothing more to keep
    code_path = ("code",)
    records = store.scan(code_path)
    assert records is not None
    assert sorted(records.column("function").to_pylist()) == ["root", "same"]
    root = next(r for r in records.to_pylist() if r["function"] == "root")
    current = project.load("pipe").root.packet_function
    assert root[RECORD_ID] == str(current.content_hash())
    assert json.loads(root["structure"]) == describe_code(current.fn).structure
    assert json.loads(root["modules"]) == {"root": "pipe"}
    assert root["code_hash"] == str(current.code_hash)
    same = next(r for r in records.to_pylist() if r["function"] == "same")
    assert json.loads(same["depends_on"]) == {"pyarrow": pa.__version__}

    project.edit("pipe.py", "np.sqrt(x)", "np.sqrt(x) + 1")
    pipeline_of(project, store).run()
    after = store.scan(code_path)
    assert after is not None
    assert sorted(after.column("function").to_pylist()) == ["root", "root", "same"]


def test_a_run_from_a_deleted_directory_still_runs(
    project: ModuleTree, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = pipeline_of(project, store)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert pipeline.run().counts["root"].computed == 3
    assert pipeline.runs().row(0, named=True)["git_commit"] is None


def test_the_reader_types_every_manifest_column_as_stored() -> None:
    from podline.observability import reader

    stored = pl.from_arrow(manifest_module.MANIFEST_SCHEMA.empty_table())
    assert isinstance(stored, pl.DataFrame)
    assert dict(stored.schema) == reader._MANIFEST_COLUMNS
