"""Where code comes from: the user's project, the standard library or an installed package.

Code identity follows the user's project code and stops at everything else, so it needs one
rule that says which is which. The rule goes by the **file** a module or function was loaded
from (its real path, symbolic links resolved):

* ``installed``: a path with a ``site-packages`` or ``dist-packages`` directory in it (where
  pip, conda, uv and Debian put installed packages, in any environment), a ``.egg`` archive,
  or below the interpreter's own ``purelib``/``platlib`` directories;
* ``stdlib``: below the interpreter's standard library directories, or a built-in or frozen
  module of the standard library (no file);
* ``podline``: podline's own package (its version is recorded in the run manifest instead);
* ``project``: any other file: modules next to your script or notebook, on ``PYTHONPATH``, or
  a package installed in editable mode (``pip install -e``), whose files are yours to edit;
* ``unknown``: no file at all (code typed at a prompt, built by ``exec``).

Installed packages are named by their distribution (``sklearn`` -> ``scikit-learn``) for the
run manifest and for ``depends_on=``; ``package_versions`` and ``dependency_versions`` look
their versions up through ``importlib.metadata``.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Literal

from podline.errors import FunctionDefinitionError

__all__ = [
    "Origin",
    "dependency_versions",
    "file_origin",
    "module_origin",
    "package_versions",
]

Origin = Literal["project", "stdlib", "installed", "podline", "unknown"]

_INSTALL_DIRS = frozenset({"site-packages", "dist-packages"})
_PODLINE_DIR = str(Path(__file__).resolve().parents[1])


@cache
def _roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(installed package directories, standard library directories), as real paths."""
    paths = sysconfig.get_paths()
    installed = {paths[k] for k in ("purelib", "platlib") if k in paths}
    stdlib = {paths[k] for k in ("stdlib", "platstdlib") if k in paths}
    return _real(installed), _real(stdlib)


def _real(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({os.path.join(os.path.realpath(p), "") for p in paths}))


@cache
def file_origin(filename: str | None) -> Origin:
    """Where the code in ``filename`` comes from (see the module docs)."""
    if not filename or not os.path.isabs(filename):
        return "unknown"
    path = os.path.realpath(filename)
    if path == _PODLINE_DIR or path.startswith(os.path.join(_PODLINE_DIR, "")):
        return "podline"
    parts = Path(path).parts
    installed, stdlib = _roots()
    if (
        _INSTALL_DIRS.intersection(parts)
        or any(part.endswith(".egg") for part in parts)
        or path.startswith(installed)
    ):
        return "installed"
    if path.startswith(stdlib):
        return "stdlib"
    return "project"


def module_origin(module: ModuleType | str | None) -> Origin:
    """Where a module (or the module of this name, if imported) comes from."""
    if isinstance(module, str):
        name = module
        module = sys.modules.get(module)
        if module is None:
            return "stdlib" if name.partition(".")[0] in sys.stdlib_module_names else "unknown"
    if module is None:
        return "unknown"
    filename = getattr(module, "__file__", None)
    if filename is None:
        # A namespace package (no __init__.py) goes by its directory; built-in and frozen
        # modules have neither.
        locations = list(getattr(module, "__path__", None) or [])
        if locations:
            return file_origin(os.path.join(locations[0], "__init__.py"))
        top = module.__name__.partition(".")[0]
        return "stdlib" if top in sys.stdlib_module_names else "unknown"
    return file_origin(filename)


def package_versions(import_names: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` of the installed distributions that provide these
    top-level import names; names no distribution provides are left out."""
    found: dict[str, str] = {}
    for name in import_names:
        for distribution in _distributions(name):
            found[distribution] = _version(distribution)
    return dict(sorted(found.items()))


def dependency_versions(names: Iterable[str], function: str) -> dict[str, str]:
    """``{distribution: version}`` for ``depends_on=``: each name is a distribution or a
    top-level import name; one that names nothing installed is a ``FunctionDefinitionError``."""
    found: dict[str, str] = {}
    for name in names:
        distributions = _distributions(name)
        if not distributions:
            raise FunctionDefinitionError(
                f"{function}: depends_on names {name!r}, which is not an installed "
                "distribution or the import name of one; check the spelling (e.g. "
                "'scikit-learn' or 'sklearn')"
            )
        for distribution in distributions:
            found[distribution] = _version(distribution)
    return dict(sorted(found.items()))


def _distributions(name: str) -> tuple[str, ...]:
    """The distributions that provide ``name`` (a distribution or a top-level module)."""
    try:
        return (_canonical_name(metadata.distribution(name).metadata["Name"]),)
    except metadata.PackageNotFoundError:
        pass
    providers = _providers().get(name)
    if providers is None:  # perhaps installed since the map was made
        _providers.cache_clear()
        providers = _providers().get(name, [])
    return tuple(sorted({_canonical_name(p) for p in providers}))


@cache
def _providers() -> Mapping[str, list[str]]:
    # Reads the metadata of every installed distribution (about 0.1 s), hence only when a
    # name is not a distribution of its own, and kept for the process.
    return metadata.packages_distributions()


def _version(distribution: str) -> str:
    return metadata.version(distribution)


def _canonical_name(name: str) -> str:
    """PEP 503 normalization: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()
