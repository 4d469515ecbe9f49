"""podline makes jemalloc Arrow's allocator when a pipeline is made, unless the user chose one
(``runtime.choose_arrow_allocator``; docs/scaling.md). Checked in fresh interpreters: the
choice is process-wide and made once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import podline

_SRC = str(Path(podline.__file__).parent.parent)


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def _backends(before: str, env: dict[str, str | None]) -> tuple[str, str]:
    """Arrow's default pool's backend before and after making a pipeline, in a fresh
    interpreter that first runs ``before``, with ``env`` (None: unset)."""
    code = textwrap.dedent(
        f"""
        import pyarrow as pa
        {before}
        first = pa.default_memory_pool().backend_name
        from podline import MemoryStore, Pipeline
        Pipeline("p", MemoryStore())
        table = pa.table({{"x": list(range(1000))}})  # allocated by the chosen pool
        assert pa.total_allocated_bytes() >= table.nbytes
        print(first, pa.default_memory_pool().backend_name)
        """
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")]),
    }
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    first, then = done.stdout.split()
    return first, then


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow has no jemalloc")
def test_a_pipeline_makes_jemalloc_the_default() -> None:
    first, then = _backends("", {"ARROW_DEFAULT_MEMORY_POOL": None})
    assert (first, then) == ("mimalloc", "jemalloc")


def test_the_environment_variable_wins() -> None:
    assert _backends("", {"ARROW_DEFAULT_MEMORY_POOL": "system"}) == ("system", "system")


def test_a_pool_set_by_the_program_wins() -> None:
    before = "pa.set_memory_pool(pa.system_memory_pool())"
    assert _backends(before, {"ARROW_DEFAULT_MEMORY_POOL": None}) == ("system", "system")
