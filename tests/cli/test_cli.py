"""The ``podline`` command line, run as a user runs it: ``python -m podline`` in a fresh
process (the console script calls the same ``podline.cli:main``), with this checkout's
sources first on the path. Read commands run after the pipeline's file is deleted, from
another directory: they need the store alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import podline

ROOT = Path(__file__).parents[2]
SRC = Path(podline.__file__).parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.py"

FAILING = """
import podline
from podline import function_pod


@function_pod("inverse")
def inverse(x: int) -> float:
    print(f"inverting {x}")  # on stdout: --json must keep it out of the document
    return 1 / x


numbers = podline.DictSource([{"k": i, "x": i} for i in range(3)], tag_columns=["k"])
with podline.Pipeline("failing") as pipeline:
    inverse.pod(numbers)
"""


def podline_cli(*args: str | Path, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m podline *args`` in ``cwd``; check its exit status is ``code``."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "CI": "1"}
    env.pop("PODLINE_STORE", None)
    done = subprocess.run(
        [sys.executable, "-m", "podline", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def write(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source))
    return path


def test_a_second_run_of_the_quickstart_computes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (first,) = as_json(podline_cli("run", QUICKSTART, "--store", store, "--json", cwd=tmp_path))
    assert first["pipeline_uri"].startswith("quickstart@")
    speed, grade = first["nodes"]["speed"], first["nodes"]["grade"]
    assert (speed["computed"], speed["skipped"], grade["computed"]) == (5, 1, 5)
    # The second run (async this time) prints the summary Pipeline.run's result prints.
    second = podline_cli("run", QUICKSTART, "-s", store, "-o", "async", cwd=tmp_path).stdout
    title, header, *rows = second.splitlines()
    assert title.startswith(f"run {title.split()[1]} of {first['pipeline_uri']}: ")
    assert header.split() == ["node", "computed", "cached", "skipped", "failed", "rows"]
    counts = {row.split()[0]: [int(n) for n in row.split()[1:]] for row in rows}
    assert list(counts) == list(first["nodes"])
    assert counts["grade"] == [0, 5, 0, 0, 5]
    assert sum(c[0] for c in counts.values()) == 0  # nothing computed


def test_failed_packets_exit_1_and_read_back_from_the_store_alone(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    store = tmp_path / "store"
    file = write(project / "failing.py", FAILING)
    done = podline_cli("run", file, "-s", store, "--json", cwd=project, code=1)
    (first,) = as_json(done)  # the function's prints went to stderr
    assert "inverting 1" in done.stderr
    assert first["nodes"]["inverse"] == {**first["nodes"]["inverse"], "computed": 2, "failed": 1}
    # Again on a process pool (the file's functions travel by value), recomputing, and
    # without bars: status and logs are recorded as ever, and the summary names them.
    args = ("-e", "processes", "-w", "2", "--recompute", "inverse", "--no-progress", "--json")
    (run,) = as_json(podline_cli("run", file, "-s", store, *args, cwd=project, code=1))
    assert run["nodes"]["inverse"] == {
        "computed": 2,
        "cached": 0,
        "skipped": 0,
        "failed": 1,
        "rows": 2,
        "recomputed": 2,
    }
    assert run["failure_logs"] == (
        f"podline logs --store {store} --pipeline failing --state FAILED --run-id {run['run_id']}"
    )
    file.unlink()  # the code is gone: what follows reads the store alone

    failed = as_json(podline_cli("logs", "-s", store, "--state", "failed", "--json", cwd=elsewhere))
    assert [(r["node"], r["k"], r["stdout"]) for r in failed] == [
        ("inverse", 0, "inverting 0\n"),
        ("inverse", 0, "inverting 0\n"),
    ]
    assert "ZeroDivisionError" in failed[1]["traceback"]
    text = podline_cli("logs", "-s", store, "--tag", "k=0", "-r", run["run_id"], cwd=elsewhere)
    assert text.stdout.startswith(f"== inverse FAILED k=0  (run {run['run_id']}, ")
    assert "    return 1 / x" in text.stdout

    status = as_json(podline_cli("status", "-s", store, "--json", cwd=elsewhere))
    assert (status[0]["k"], status[0]["state"]) == (0, "FAILED")  # failures first
    assert sorted((r["k"], r["state"]) for r in status[1:]) == [(1, "SUCCESS"), (2, "SUCCESS")]
    assert {r["run_id"] for r in status} == {run["run_id"]}

    runs = as_json(podline_cli("runs", "-s", store, "--json", cwd=elsewhere))
    assert [(r["run_id"], r["computed"], r["failed"]) for r in runs] == [
        (run["run_id"], 2, 1),
        (first["run_id"], 2, 1),
    ]
    assert runs[0]["python_version"] == ".".join(map(str, sys.version_info[:3]))

    shown = as_json(podline_cli("show", "inverse", "-s", store, "--json", cwd=elsewhere))
    assert shown == [{"k": 1, "inverse": 1.0}, {"k": 2, "inverse": 0.5}]
    graph = as_json(podline_cli("graph", "-s", store, "--json", cwd=elsewhere))
    assert [(n["label"], n["upstreams"], n["state"]) for n in graph["nodes"]] == [
        ("DictSource", [], "ran"),
        ("inverse", ["DictSource"], "failed"),
    ]
    assert graph["nodes"][1]["counts"] == {"computed": 2, "cached": 0, "skipped": 0, "failed": 1}
    mermaid = podline_cli("graph", "-s", store, "-f", "mermaid", cwd=elsewhere).stdout
    assert mermaid.startswith("flowchart TD\n")
    # Planning needs the code and the sources: here neither is at hand.
    plan = podline_cli("plan", "-s", store, cwd=elsewhere, code=4)
    assert "function failing:inverse cannot be imported" in plan.stderr


def test_fail_fast_stops_at_the_failure_with_its_traceback(tmp_path: Path) -> None:
    file = write(tmp_path / "failing.py", FAILING)
    done = podline_cli("run", file, "--error-policy", "fail_fast", cwd=tmp_path, code=1)
    assert "ZeroDivisionError: division by zero" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("podline: inverse failed on the row")
    assert (tmp_path / ".podline").is_dir()  # the default store: ./.podline
    # With --json, stdout is one JSON document even when the run raised: no run returned.
    done = podline_cli(
        "run",
        file,
        "--error-policy",
        "fail_fast",
        "--recompute-all",
        "--json",
        cwd=tmp_path,
        code=1,
    )
    assert json.loads(done.stdout) == []
    assert done.stderr.rstrip().splitlines()[-1].startswith("podline: inverse failed on the row")


def test_a_store_that_is_not_there_exits_3_and_is_not_created(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    done = podline_cli("status", "--store", nowhere, cwd=tmp_path, code=3)
    assert done.stderr == (
        f"podline: store 'file://{nowhere}' holds no pipelines (nothing was run on it); "
        "name another with --store or PODLINE_STORE\n"
    )
    assert not nowhere.exists()


def test_without_click_the_command_says_what_to_install(tmp_path: Path) -> None:
    blocked = (
        "import runpy, sys; sys.modules['click'] = None; "
        "runpy.run_module('podline', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", blocked],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        'podline: the command line needs click; install it with: pip install "podline[cli]"\n'
    )


def test_the_console_script_is_declared_and_loads_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"podline": "podline.cli:main"}
    assert project["optional-dependencies"]["cli"] == ["click>=8.1"]
    point = EntryPoint("podline", project["scripts"]["podline"], "console_scripts")
    from podline.cli import main

    assert point.load() is main
