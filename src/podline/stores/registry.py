"""The store registry: which store class opens which URL scheme.

``open_store("s3://bucket/dir")`` looks the scheme (``s3``; ``""`` for a plain directory path)
up here. The built-in classes register themselves when ``podline.stores`` is imported; another
package adds its own in one of two ways:

* by calling ``register_store(MyStore)`` (for code the user imports anyway), or
* by declaring an entry point in the ``podline.stores`` group, named after the scheme::

      [project.entry-points."podline.stores"]
      kv = "my_package.store:KeyValueStore"

  An entry point is loaded only when its scheme is first asked for, so installed backends cost
  nothing until used.

A store class is anything with ``schemes`` (the schemes it opens) and ``from_config(config)``
returning a ``Store``: every ``ScopedStore`` subclass is one.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from podline.errors import StoreError
from podline.stores.base import Store

__all__ = ["ENTRY_POINT_GROUP", "StoreClass", "register_store", "store_class", "store_schemes"]

#: The entry-point group installed packages declare their store classes in.
ENTRY_POINT_GROUP = "podline.stores"


class StoreClass(Protocol):
    """What the registry needs of a store class."""

    @property
    def schemes(self) -> tuple[str, ...]:
        """The URL schemes this class opens (``""``: a plain directory path)."""
        ...

    def from_config(self, config: str) -> Store:
        """The store ``config`` (``scheme://...``, possibly with a ``#prefix``) names."""
        ...


_CLASSES: dict[str, StoreClass] = {}
_LOCK = threading.Lock()


def register_store(cls: StoreClass, *, replace: bool = False) -> None:
    """Let ``open_store`` open every scheme of ``cls`` with it.

    A scheme already registered to another class is a ``StoreError`` unless ``replace`` is
    true: two packages claiming one scheme is a conflict the user should hear about.
    """
    schemes = [scheme.lower() for scheme in cls.schemes]
    if not schemes:
        raise StoreError(f"{_name(cls)} names no URL schemes to open")
    with _LOCK:
        taken = [s for s in schemes if s in _CLASSES and _CLASSES[s] is not cls]
        if taken and not replace:
            owners = ", ".join(f"{_label(s)} by {_name(_CLASSES[s])}" for s in taken)
            raise StoreError(
                f"cannot register {_name(cls)}: {owners} already; pass replace=True to take over"
            )
        for scheme in schemes:
            _CLASSES[scheme] = cls


def store_class(scheme: str) -> StoreClass:
    """The class that opens ``scheme``, loading its entry point on first use."""
    key = scheme.lower()
    with _LOCK:
        found = _CLASSES.get(key)
    if found is not None:
        return found
    point = _entry_points().get(key)
    if point is None:
        raise StoreError(
            f"no store backend opens {_label(key)}; known: {', '.join(store_schemes())} "
            f"(a package adds one with register_store or a {ENTRY_POINT_GROUP!r} entry point)"
        )
    cls = _load(point, key)
    register_store(cls)
    return cls


def store_schemes() -> list[str]:
    """Every scheme ``open_store`` can open, installed entry points included, as users write
    them (``"a directory path"`` for ``""``), sorted."""
    with _LOCK:
        known = set(_CLASSES)
    return sorted(_label(s) for s in known | set(_entry_points()))


def _entry_points() -> dict[str, EntryPoint]:
    return {point.name.lower(): point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _load(point: EntryPoint, scheme: str) -> StoreClass:
    try:
        cls = point.load()
    except Exception as exc:  # a broken plugin is reported, never a crash deep in open_store
        raise StoreError(
            f"the {ENTRY_POINT_GROUP!r} entry point {point.name!r} ({point.value}) failed to "
            f"load: {type(exc).__name__}: {exc}"
        ) from exc
    schemes = getattr(cls, "schemes", None)  # a plugin's object is untrusted: check its shape
    if not isinstance(schemes, tuple) or scheme not in [s.lower() for s in schemes]:
        raise StoreError(
            f"the {ENTRY_POINT_GROUP!r} entry point {point.name!r} ({point.value}) is not a "
            f"store class opening {_label(scheme)}: its schemes are {schemes!r}"
        )
    loaded: StoreClass = cls
    return loaded


def _label(scheme: str) -> str:
    return f"{scheme}://" if scheme else "a directory path"


def _name(cls: StoreClass) -> str:
    return getattr(cls, "__qualname__", repr(cls))
