"""Functions defined in notebook cells: a later cell may define a helper, a constant or a
table anew while the pod stays the same object. Cells are run here as IPython runs them
(code compiled under a cell's file name, its lines in ``linecache`` with no modification
time, executed in one ``__main__`` namespace), so no kernel is needed."""

from __future__ import annotations

import itertools
import linecache
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import podline
from podline.errors import FunctionIdentityError

_cells = itertools.count()

Cell = Callable[[str], None]


@pytest.fixture
def notebook() -> Iterator[tuple[dict[str, Any], Cell]]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    names: list[str] = []

    def cell(source: str) -> None:
        filename = f"/tmp/ipykernel_podline_test/{next(_cells)}.py"
        linecache.cache[filename] = (
            len(source),
            None,
            source.splitlines(keepends=True),
            filename,
        )
        names.append(filename)
        exec(compile(source, filename, "exec"), namespace)

    yield namespace, cell
    for name in names:
        linecache.cache.pop(name, None)


SETUP = """
import podline
from podline import function_pod

SCALE = 2.0
TABLE = {"a": 1.0}

def helper(x):
    return x + 1
"""

POD = """
@function_pod("y")
def f(x: float) -> float:
    return helper(x) * SCALE * TABLE["a"]
"""


def _build(ns: dict[str, Any], rows: int = 4) -> podline.Pipeline:
    source = podline.DictSource([{"k": i, "x": float(i)} for i in range(rows)], tag_columns=["k"])
    with podline.Pipeline("nb", store=ns["store"]) as pipeline:
        ns["f"].pod(source)
    return pipeline


def _run(ns: dict[str, Any], rows: int = 4) -> tuple[int, list[float]]:
    pipeline = _build(ns, rows)
    result = pipeline.run(progress=False)
    values = pipeline.f.as_table(sort_by_tags=True).column("y").to_pylist()
    plain = [ns["f"](float(i)) for i in range(rows)]
    assert values == plain  # what plain Python computes now
    return result.counts["f"].computed, values


@pytest.mark.parametrize(
    "later_cell",
    [
        "SCALE = 3.0",
        "def helper(x):\n    return x + 100",
        'TABLE = {"a": 10.0}',
        'TABLE["a"] = 5.0',
    ],
)
def test_a_later_cell_changing_what_the_pod_uses_recomputes(
    notebook: tuple[dict[str, Any], Cell], later_cell: str
) -> None:
    ns, cell = notebook
    ns["store"] = podline.MemoryStore()
    cell(SETUP)
    cell(POD)
    assert _run(ns)[0] == 4
    assert _run(ns)[0] == 0
    cell(later_cell)
    assert _build(ns).plan().counts().filter(node="f")["computed"].item() == 4
    assert _run(ns)[0] == 4  # was 0: every row served from the old code's results
    assert _run(ns)[0] == 0


def test_a_numpy_array_made_in_another_cell_counts_by_its_content(
    notebook: tuple[dict[str, Any], Cell],
) -> None:
    """An array podline's value hashing does not take (weights made in one cell, read by a
    pod of another) was no part of the identity: redefining it served the old results."""
    ns, cell = notebook
    ns["store"] = podline.MemoryStore()
    cell(SETUP + "import numpy as np\nWEIGHTS = np.array([[1.0, 2.0], [3.0, 4.0]])\n")
    cell('@function_pod("y")\ndef f(x: float) -> float:\n    return float(x * WEIGHTS.sum())\n')
    assert _run(ns)[0] == 4
    assert _run(ns)[0] == 0
    cell("WEIGHTS = np.array([[1.0, 2.0], [3.0, 5.0]])")
    assert _run(ns)[0] == 4
    cell("WEIGHTS = WEIGHTS.T.copy()")  # the same sum, other bytes and order: a new identity
    assert _run(ns)[0] == 4
    cell("WEIGHTS = np.array([[1.0, 3.0], [2.0, 5.0]])")  # equal to the last one
    assert _run(ns)[0] == 0


def test_a_pipeline_built_before_the_change_refuses_to_run(
    notebook: tuple[dict[str, Any], Cell],
) -> None:
    ns, cell = notebook
    ns["store"] = podline.MemoryStore()
    cell(SETUP)
    cell(POD)
    old = _build(ns, rows=2)
    old.run(progress=False)
    stream = ns["f"].pod(podline.DictSource([{"k": 0, "x": 7.0}], tag_columns=["k"]))
    cell("SCALE = 3.0")
    for attempt in (lambda: old.run(progress=False), old.plan, stream.as_table):
        with pytest.raises(FunctionIdentityError, match=r"'f'.*constant `SCALE` changed"):
            attempt()
    # A pipeline built now computes with the current code, and stored nothing wrong: with
    # SCALE back to 2.0 the first results serve, and the new rows are computed right.
    assert _run(ns, rows=4) == (4, [3.0, 6.0, 9.0, 12.0])
    cell("SCALE = 2.0")
    assert _run(ns, rows=8)[0] == 6


CLASS = """
import dataclasses

@dataclasses.dataclass
class Rule:
    factor: float

    def apply(self, x):
        return x * self.factor
"""

USES_CLASS = """
@function_pod("y")
def f(x: float) -> float:
    return Rule(2.0).apply(x)
"""


@pytest.fixture
def kernel_main(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel's __main__ is the notebook's namespace, a module with no file: inspect cannot
    # tell where a class of it was defined ("source code not available").
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))


@pytest.mark.usefixtures("kernel_main")
def test_a_class_defined_in_a_cell_is_followed(notebook: tuple[dict[str, Any], Cell]) -> None:
    ns, cell = notebook
    ns["store"] = podline.MemoryStore()
    cell(SETUP)
    cell(CLASS)
    cell(USES_CLASS)
    assert _run(ns)[0] == 4  # was a bare OSError: source code not available
    assert _run(ns)[0] == 0
    cell(CLASS.replace("x * self.factor", "x * self.factor + 1"))
    assert _run(ns)[0] == 4


@pytest.mark.usefixtures("kernel_main")
def test_a_cell_class_without_methods_is_a_clear_error(
    notebook: tuple[dict[str, Any], Cell],
) -> None:
    ns, cell = notebook
    ns["store"] = podline.MemoryStore()
    cell(SETUP)
    cell("import dataclasses\n@dataclasses.dataclass\nclass Rule:\n    factor: float\n")
    cell('@function_pod("y")\ndef f(x: float) -> float:\n    return x * Rule(2.0).factor\n')
    with pytest.raises(FunctionIdentityError, match=r"class __main__\.Rule.*notebook cell"):
        _build(ns)


def test_a_function_defined_under_time_magic_names_the_magic() -> None:
    # %%time compiles the cell under '<timed exec>' and keeps no source: the error said to
    # define the function "in a notebook cell", where it was.
    namespace: dict[str, Any] = {"__name__": "__main__", "function_pod": podline.function_pod}
    source = '@function_pod("y")\ndef timed(x: float) -> float:\n    return x + 1\n'
    with pytest.raises(FunctionIdentityError, match=r"__main__\.timed: .*run under %%time"):
        exec(compile(source, "<timed exec>", "exec"), namespace)
