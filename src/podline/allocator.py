"""The choice of Arrow's memory allocator: jemalloc for the whole process where pyarrow has
it, unless the program chose otherwise.

Arrow's C++ library picks the allocator of everything it allocates on its own (the buffers of
its file readers and writers, its scans' threads) once, when pyarrow loads, from the
``ARROW_DEFAULT_MEMORY_POOL`` variable, mimalloc without it. ``pyarrow.set_memory_pool``,
called later, changes only the pool pyarrow's Python functions default to. So the choice is
made in two places:

* ``prefer_jemalloc``, run by ``import podline`` (which loads no pyarrow): when pyarrow is not
  loaded yet and the variable is unset, on Linux, with a pyarrow built with jemalloc, it sets
  the variable to ``jemalloc`` in the process's environment, so that jemalloc serves all of
  Arrow from the start. Child processes inherit it, as they would the user's own setting.
* ``choose_arrow_allocator``, run when a ``Pipeline`` is made: in a program that loaded
  pyarrow before podline (so the variable came too late), make jemalloc the pool of
  pyarrow's Python functions, unless the program chose a pool itself.

Why jemalloc, measured (decision 83, docs/performance.md): podline allocates on several
threads at once (the committer, merges, async nodes), and with mimalloc a run held far more
memory than its live Arrow buffers (50-130 MB more during a store's merge); jemalloc held a
first run of 10M rows 126-170 MB lower and cost less CPU, and choosing it at load rather than
with ``set_memory_pool`` another 35-190 MB (1M to 10M rows). A run of 100,000 rows peaks
some 30 MB higher. Measured on Linux only, hence the platform check.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

__all__ = ["built_with_jemalloc", "choose_arrow_allocator", "prefer_jemalloc"]

#: Arrow's variable naming its default allocator, read once, when pyarrow loads.
_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def prefer_jemalloc() -> None:
    """Set ``ARROW_DEFAULT_MEMORY_POOL=jemalloc`` if it is unset, pyarrow is not loaded yet,
    the platform is Linux and the installed pyarrow has jemalloc (see the module docs)."""
    if _VARIABLE in os.environ or "pyarrow" in sys.modules or not sys.platform.startswith("linux"):
        return
    spec = importlib.util.find_spec("pyarrow")
    if spec is None or not spec.submodule_search_locations:
        return
    package = next(iter(spec.submodule_search_locations))
    # (os.path rather than pathlib, whose import would double what ``import podline`` costs.)
    if built_with_jemalloc(os.path.join(package, "include", "arrow", "util", "config.h")):
        os.environ[_VARIABLE] = "jemalloc"


def built_with_jemalloc(config_header: str) -> bool:
    """Whether Arrow's build configuration header (shipped inside pyarrow) says it was built
    with jemalloc; False if there is no such header. Read instead of asked because asking
    loads pyarrow, and because naming a backend the build lacks makes Arrow log a warning."""
    try:
        with open(config_header, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return False
    return "#define ARROW_JEMALLOC\n" in text


@functools.cache
def choose_arrow_allocator() -> None:
    """Make jemalloc the default pool of pyarrow's Python functions, once a process, where
    pyarrow has it and nobody chose another: neither the variable (set by the user, or by
    ``prefer_jemalloc``) nor a call to ``pyarrow.set_memory_pool`` (a pool other than
    mimalloc, pyarrow's own default). Buffers made before keep the pool that made them."""
    if os.environ.get(_VARIABLE):
        return
    import pyarrow as pa

    if pa.default_memory_pool().backend_name != "mimalloc":
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # (a pyarrow built without jemalloc, as on Windows)
        return
    pa.set_memory_pool(pool)
