"""What importing podline loads, checked in fresh interpreters: ``import podline`` loads none
of the heavy libraries, and importing the names a pipeline script uses loads pyarrow (and the
numpy it brings) but not polars, pandas, deltalake or the optional extras, which load when
first needed (docs/performance.md, "Start-up")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import podline

_SRC = str(Path(podline.__file__).parent.parent)
# Loaded only when a feature needs them: reading results (polars), a Delta table (deltalake),
# a pandas frame, progress bars, the CLI, tracing, Ray, PostgreSQL, SVG graphs.
_ON_DEMAND = [
    "polars",
    "pandas",
    "deltalake",
    "tqdm",
    "click",
    "opentelemetry",
    "ray",
    "adbc_driver_manager",
    "graphviz",
]
_PIPELINE_NAMES = [
    "Pipeline",
    "function_pod",
    "DictSource",
    "ListSource",
    "ArrowTableSource",
    "Join",
    "Filter",
    "DeltaStore",
    "MemoryStore",
    "StatusObserver",
    "LoggingObserver",
    "ThreadExecutor",
]


def _module_sets(code: str, where: Path) -> list[set[str]]:
    """Top-level packages in ``sys.modules`` at each ``print(json.dumps(sorted(sys.modules)))``
    of ``code`` and at its end, run as a script in ``where`` in a fresh interpreter (function
    pods need their source file)."""
    script = where / "probe.py"
    script.write_text(code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=where,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    return [{name.split(".")[0] for name in json.loads(line)} for line in lines]


def _loaded_after(code: str, where: Path) -> set[str]:
    return _module_sets(code, where)[-1]


def test_import_podline_loads_no_heavy_library(tmp_path: Path) -> None:
    loaded = _loaded_after("import podline", tmp_path)
    heavy = [*_ON_DEMAND, "pyarrow", "numpy", "cloudpickle"]
    assert sorted(loaded & set(heavy)) == []


def test_pipeline_names_load_arrow_but_nothing_on_demand(tmp_path: Path) -> None:
    loaded = _loaded_after(f"from podline import {', '.join(_PIPELINE_NAMES)}", tmp_path)
    assert "pyarrow" in loaded  # the probe did import the pipeline stack
    assert sorted(loaded & set(_ON_DEMAND)) == []


def test_defining_a_pipeline_loads_nothing_on_demand(tmp_path: Path) -> None:
    """Building sources and pods and compiling a pipeline on a memory store needs none of
    the on-demand libraries (pandas aside: pyarrow imports it, when installed, to convert
    Python values), and a synchronous run never loads asyncio."""
    script = textwrap.dedent(
        """
        import json, sys
        import podline as pl_
        @pl_.function_pod(output_keys="y")
        def double(x: int) -> int:
            return 2 * x
        source = pl_.DictSource([{"k": 1, "x": 3}, {"k": 2, "x": 4}], tag_columns=["k"])
        with pl_.Pipeline("p", store=pl_.MemoryStore()) as p:
            double.pod(source)
        p.compile()
        print(json.dumps(sorted(sys.modules)))
        assert p.run().counts["double"].computed == 2
        """
    )
    defined, ran = _module_sets(script, tmp_path)
    assert "pyarrow" in defined
    assert sorted(defined & (set(_ON_DEMAND) - {"pandas"})) == []
    # Running looks results up with polars; it needs no other on-demand library, nor asyncio.
    assert sorted(ran & (set(_ON_DEMAND) - {"pandas", "polars"})) == []
    assert "asyncio" not in ran


def test_every_public_name_resolves() -> None:
    for name in podline.__all__:
        assert getattr(podline, name) is not None, name
    assert set(podline.__all__) <= set(dir(podline))
    assert podline.Pipeline.__module__ == "podline.pipeline.pipeline"
    assert podline.function_pod.__module__ == "podline.functions.pod"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Pipelin'"):
        _ = podline.Pipelin  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'Pipelin'"):
        exec("from podline import Pipelin", {})
