"""Finding the pipelines a Python file defines, for ``podline run FILE.py[:NAME]``.

The rule (docs/cli.md, "Which pipelines a file defines"):

1. The file is imported as a module named after it (``analysis.py``: ``analysis``), with its
   directory first on ``sys.path`` as ``python FILE.py`` would put it, so modules beside it
   import. It is not ``__main__``, so an ``if __name__ == "__main__":`` block does not run.
2. Without ``:NAME``, its pipelines are, in the order the file defines them, every top-level
   name bound to a ``Pipeline``, and every top-level function defined in the file whose return
   annotation is ``Pipeline`` (``-> Pipeline`` or ``-> podline.Pipeline``), called with no
   arguments. A pipeline bound to several names counts once.
3. ``:NAME`` picks one: a top-level name bound to a ``Pipeline``, or to a function that returns
   one when called with no arguments (annotated or not); failing that, the pipeline found by
   rule 2 whose ``Pipeline.name`` is ``NAME``.

Functions of the file are shipped to worker processes by value (``cloudpickle``), so a process
or Ray executor needs no import path to the file.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from podline.errors import NotFoundError, PipelineError, format_names
from podline.pipeline import Pipeline

__all__ = ["load_pipelines", "split_target"]


def split_target(target: str) -> tuple[Path, str | None]:
    """``FILE.py[:NAME]`` as (file, name); a usage error for a file that does not exist."""
    path, sep, name = target.rpartition(":")
    if not sep or not path.endswith(".py") or Path(target).is_file():
        path, name = target, ""
    file = Path(path)
    if not file.is_file():
        raise click.BadParameter(f"no file {path!r}", param_hint="FILE.py[:NAME]")
    return file, name or None


def load_pipelines(target: str) -> list[Pipeline]:
    """The pipelines ``target`` (``FILE.py[:NAME]``) names, following the module rule."""
    file, name = split_target(target)
    module = _import(file)
    if name is not None:
        return [_named(module, name, file)]
    found = _defined(module)
    if not found:
        raise click.UsageError(
            f"{file} defines no pipeline: podline runs top-level Pipeline objects and "
            "top-level functions annotated '-> Pipeline' (see 'podline run --help')"
        )
    return found


def _import(file: Path) -> ModuleType:
    name = file.stem
    taken = sys.modules.get(name)
    taken_file = getattr(taken, "__file__", None)
    # The same file imported before (by an earlier command in this process) is imported again.
    if taken is not None and (taken_file is None or Path(taken_file) != file.resolve()):
        raise click.UsageError(
            f"{file} would be imported as module {name!r}, which is already imported from "
            f"{taken_file or 'a built-in'}; rename the file"
        )
    spec = importlib.util.spec_from_file_location(name, file.resolve())
    if spec is None or spec.loader is None:
        raise click.BadParameter(f"{file} is not a Python file", param_hint="FILE.py[:NAME]")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PipelineError(f"{file} raised {type(exc).__name__} while imported: {exc}") from exc
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def _defined(module: ModuleType) -> list[Pipeline]:
    found: dict[int, Pipeline] = {}
    for value in list(vars(module).values()):
        if isinstance(value, Pipeline):
            found.setdefault(id(value), value)
        elif _builds_pipeline(value, module):
            built = _call(value)
            found.setdefault(id(built), built)
    return list(found.values())


def _builds_pipeline(value: object, module: ModuleType) -> bool:
    """Whether ``value`` is a function of ``module`` annotated to return a ``Pipeline``."""
    if not inspect.isfunction(value) or value.__module__ != module.__name__:
        return False
    returns = value.__annotations__.get("return")
    if isinstance(returns, str):  # ``from __future__ import annotations``
        return returns == "Pipeline" or returns.endswith(".Pipeline")
    return isinstance(returns, type) and issubclass(returns, Pipeline)


def _named(module: ModuleType, name: str, file: Path) -> Pipeline:
    value = vars(module).get(name)
    if isinstance(value, Pipeline):
        return value
    if callable(value):
        built = _call(value)
        if isinstance(built, Pipeline):
            return built
        raise click.UsageError(f"{file}:{name} returned {type(built).__name__}, not a Pipeline")
    by_name = {p.name: p for p in _defined(module)}
    if name in by_name:
        return by_name[name]
    raise NotFoundError(
        f"{file} has no pipeline {name!r}: no top-level name {name!r} and no pipeline named "
        f"so; its pipelines are {format_names(by_name) or 'none'}"
    )


def _call(function: Callable[..., Any]) -> Any:
    try:
        inspect.signature(function).bind()
    except TypeError:
        raise click.UsageError(
            f"{function.__qualname__}() needs arguments; podline calls pipeline functions with none"
        ) from None
    try:
        return function()
    except Exception as exc:
        raise PipelineError(
            f"{function.__qualname__}() raised {type(exc).__name__}: {exc}"
        ) from exc
