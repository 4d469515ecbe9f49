"""Helpers for function tests: import real modules written to a temporary directory."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

_counter = itertools.count()

ModuleMaker = Callable[[str], ModuleType]


@pytest.fixture
def make_module(tmp_path: Path) -> Iterator[ModuleMaker]:
    """Write source to a fresh module file and import it (a unique name each time)."""
    created: list[str] = []

    def make(source: str) -> ModuleType:
        name = f"podline_test_mod_{next(_counter)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        created.append(name)
        return module

    yield make
    for name in created:
        sys.modules.pop(name, None)
