"""Lazy exports: a package's public names that load their module on first access.

A package lists ``name -> defining module`` and forwards its module ``__getattr__`` (PEP 562)
to ``lazy_export``; type checkers see the same names through ``if TYPE_CHECKING:`` imports.
This keeps ``import podline`` (and ``podline.observability``) from loading polars, deltalake
and the rest of the stack before a name that needs them is used (docs/performance.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["lazy_export"]


def lazy_export(namespace: dict[str, Any], exports: Mapping[str, str], name: str) -> object:
    """The value of ``name`` from its module in ``exports``, cached in ``namespace`` (the
    package's globals) so later lookups do not come back here; AttributeError if ``name`` is
    not a lazy export, as for any missing module attribute."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value
