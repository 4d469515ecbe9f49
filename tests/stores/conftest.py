"""Helpers for the store tests (the ``store`` fixture lives in ``tests/conftest.py``):
``records`` builds a table, ``PIPELINE`` is a pipeline script, and ``script_file`` and
``run_script`` run a script in a fresh process with this checkout's sources."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]

#: A script running a two-function pipeline of ``n`` rows on the store a config names
#: (``argv``: config, n) and printing what it computed and the outputs, as JSON.
PIPELINE = """
import json, sys
import podline
from podline.pipeline import Pipeline
from podline.stores import open_store

config, n = sys.argv[1], int(sys.argv[2])

@podline.function_pod("y")
def square(x: int) -> int:
    return x * x

@podline.function_pod("z")
def plus_one(y: int) -> int:
    return y + 1

with open_store(config) as store:
    with Pipeline("fresh", store) as pipeline:
        plus_one.pod(square.pod(podline.DictSource(
            [{"k": i, "x": i} for i in range(n)], tag_columns=["k"])))
    result = pipeline.run()
    print(json.dumps({
        "computed": [result.counts[n].computed for n in ("square", "plus_one")],
        "z": sorted(pipeline.plus_one.as_table().column("z").to_pylist()),
    }))
"""


def records(ids: list[str], **columns: list[object]) -> pa.Table:
    """A table with the default id column and ``columns`` (types inferred by Arrow)."""
    return pa.table({"__record_id": pa.array(ids, pa.large_string()), **columns})


def script_file(tmp_path: Path, name: str, text: str) -> Path:
    """``text`` (dedented) as ``<tmp_path>/<name>.py``."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    return path


def run_script(script: Path, *args: str) -> subprocess.Popen[str]:
    """``script`` started in a fresh process importing this checkout's podline and tests."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
