"""Every error podline raises on purpose is a ``PodlineError`` from ``podline.errors``, keeping
the built-in class a caller would catch (``ValueError``, ``TypeError``) as a base."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import podline
from podline import errors
from podline.errors import ConfigurationError, PodlineError
from podline.observability import ProgressObserver, StatusObserver
from podline.pipeline import AsyncPipelineOrchestrator, Pipeline, SyncPipelineOrchestrator
from podline.stores import MemoryStore

SRC = Path(podline.__file__).parent
#: The built-in classes a caller catches for bad input; podline raises subclasses of them
#: (a mapping's KeyError, an abstract method's NotImplementedError stay what they are).
PLAIN = {"ValueError", "TypeError", "Exception"}


def _raised_builtins(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = raised.id if isinstance(raised, ast.Name) else None
        if name in PLAIN:
            found.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}")
    return found


def test_no_plain_builtin_errors_are_raised_in_src() -> None:
    raised = [hit for path in sorted(SRC.rglob("*.py")) for hit in _raised_builtins(path)]
    assert raised == []


def test_every_error_class_lives_in_the_one_hierarchy() -> None:
    classes = {
        name: c
        for name, c in vars(errors).items()
        if isinstance(c, type) and c.__module__ == errors.__name__
    }
    assert set(classes) == set(errors.__all__) - {"format_names"}
    for name, cls in classes.items():
        assert issubclass(cls, PodlineError), name
        assert getattr(podline, name, cls) is cls  # re-exported ones are the same class


OPTIONS: list[tuple[str, Callable[[], Any]]] = [
    ("max_workers", lambda: podline.ThreadExecutor(0)),
    ("max_workers", lambda: podline.ProcessExecutor(0)),
    ("backend", lambda: ProgressObserver(backend="fancy")),  # type: ignore[arg-type]
    ("refresh_seconds", lambda: ProgressObserver(refresh_seconds=0)),
    ("batch_rows", lambda: StatusObserver(MemoryStore(), batch_rows=0)),
    ("buffer_size", lambda: AsyncPipelineOrchestrator(buffer_size=0)),
    ("max_concurrency", lambda: AsyncPipelineOrchestrator(max_concurrency=0)),
    ("error_policy", lambda: SyncPipelineOrchestrator("sometimes")),  # type: ignore[arg-type]
    ("orchestrator", lambda: Pipeline("p", MemoryStore()).run("threads")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("option", "make"), OPTIONS, ids=[o for o, _ in OPTIONS])
def test_bad_options_are_configuration_errors_and_still_value_errors(
    option: str, make: Callable[[], Any]
) -> None:
    with pytest.raises(ConfigurationError, match=option) as info:
        make()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PodlineError)
