"""podline makes jemalloc Arrow's allocator, unless the user chose one (``podline.allocator``;
docs/scaling.md): for all of Arrow when podline is imported before pyarrow, for pyarrow's
Python functions when a pipeline is made otherwise. Checked in fresh interpreters: the choice
is process-wide and made once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import podline
from podline.allocator import built_with_jemalloc

_SRC = str(Path(podline.__file__).parent.parent)
_HEADER = Path(pa.__file__).parent / "include" / "arrow" / "util" / "config.h"


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def _run(code: str, env: dict[str, str | None]) -> list[str]:
    """The words ``code`` prints in a fresh interpreter with ``env`` (None: unset); it fails
    the test if the interpreter writes to stderr (Arrow logs a warning there)."""
    path = os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])
    merged = {**os.environ, "PYTHONPATH": path, **env}
    environment = {name: value for name, value in merged.items() if value is not None}
    command = [sys.executable, "-c", textwrap.dedent(code)]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    assert done.stderr == ""
    return done.stdout.split()


_MAKE_A_PIPELINE = """
from podline import MemoryStore, Pipeline
Pipeline("p", MemoryStore())
table = pa.table({"x": list(range(1000))})  # allocated by the chosen pool
assert pa.total_allocated_bytes() >= table.nbytes
"""


def _backends(before: str, env: dict[str, str | None]) -> tuple[str, str]:
    """Arrow's default pool's backend before and after making a pipeline, in a fresh
    interpreter that first imports pyarrow and runs ``before``, with ``env``."""
    code = f"import pyarrow as pa\n{before}\nfirst = pa.default_memory_pool().backend_name\n"
    code += _MAKE_A_PIPELINE + "print(first, pa.default_memory_pool().backend_name)\n"
    first, then = _run(code, env)
    return first, then


_IMPORTED_FIRST = """
import os, sys
import podline
print(os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "-"), "pyarrow" in sys.modules)
import pyarrow as pa
print(pa.default_memory_pool().backend_name)
""" + _MAKE_A_PIPELINE.replace(
    "pa.total_allocated_bytes()", "pa.jemalloc_memory_pool().bytes_allocated()"
)


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and _has_jemalloc()),
    reason="podline sets the variable on Linux, for a pyarrow with jemalloc",
)
def test_importing_podline_first_makes_jemalloc_arrows_own_default() -> None:
    # The variable Arrow reads when it loads, so jemalloc serves Arrow's internals too (which
    # pyarrow.set_memory_pool does not reach); importing podline itself loads no pyarrow.
    assert _run(_IMPORTED_FIRST, {"ARROW_DEFAULT_MEMORY_POOL": None}) == [
        "jemalloc",
        "False",
        "jemalloc",
    ]


def test_importing_podline_first_leaves_a_users_variable_alone() -> None:
    assert _run(
        _IMPORTED_FIRST.replace("jemalloc_memory_pool", "system_memory_pool"),
        {"ARROW_DEFAULT_MEMORY_POOL": "system"},
    ) == ["system", "False", "system"]


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow has no jemalloc")
def test_a_pipeline_makes_jemalloc_the_default_when_pyarrow_came_first() -> None:
    first, then = _backends("", {"ARROW_DEFAULT_MEMORY_POOL": None})
    assert (first, then) == ("mimalloc", "jemalloc")


def test_the_environment_variable_wins() -> None:
    assert _backends("", {"ARROW_DEFAULT_MEMORY_POOL": "system"}) == ("system", "system")


def test_a_pool_set_by_the_program_wins() -> None:
    before = "pa.set_memory_pool(pa.system_memory_pool())"
    assert _backends(before, {"ARROW_DEFAULT_MEMORY_POOL": None}) == ("system", "system")


def test_the_build_header_tells_whether_pyarrow_has_jemalloc(tmp_path: Path) -> None:
    # Read from the installed pyarrow's header, it agrees with what pyarrow itself says.
    assert built_with_jemalloc(str(_HEADER)) == _has_jemalloc()
    with_it = tmp_path / "with.h"
    with_it.write_text("#define ARROW_MIMALLOC\n#define ARROW_JEMALLOC\n#define ARROW_S3\n")
    without = tmp_path / "without.h"
    without.write_text("#define ARROW_MIMALLOC\n/* #undef ARROW_JEMALLOC */\n")
    vendored_only = tmp_path / "vendored.h"
    vendored_only.write_text("#define ARROW_JEMALLOC_VENDORED\n")
    assert built_with_jemalloc(str(with_it))
    assert not built_with_jemalloc(str(without))
    assert not built_with_jemalloc(str(vendored_only))
    assert not built_with_jemalloc(str(tmp_path / "missing.h"))
