"""The API reference (docs/reference/, rendered by mkdocstrings) covers the public surface:
every name users import from ``podline`` is rendered on some reference page."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import podline

REFERENCE = Path(__file__).parents[2] / "docs" / "reference"
_DIRECTIVE = re.compile(r"^::: ([\w.]+)$", re.M)
#: A directive's options: the indented lines under it.
_OPTIONS = re.compile(r"^::: ([\w.]+)\n((?:    .*\n)*)", re.M)


def _rendered() -> set[int]:
    """The ids of the objects the reference pages render (a module directive renders the
    names of its ``__all__``, or the ``members:`` it lists)."""
    objects: set[int] = set()
    for page in sorted(REFERENCE.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        listed = {m[1]: _members(m[2]) for m in _OPTIONS.finditer(text) if "members:" in m[2]}
        for target in _DIRECTIVE.findall(text):
            module_name, _, attribute = target.rpartition(".")
            try:
                module = importlib.import_module(target)
            except ImportError:
                objects.add(id(getattr(importlib.import_module(module_name), attribute)))
                continue
            names = listed.get(target, getattr(module, "__all__", []))
            objects.update(id(getattr(module, name)) for name in names)
    return objects


def _members(options: str) -> list[str]:
    """The names a ``members:`` option lists (none for ``members: false``)."""
    return re.findall(r"^ +- (\w+)$", options.partition("members:")[2], re.M)


def test_every_name_of_the_top_level_is_in_the_api_reference() -> None:
    rendered = _rendered()
    missing = [
        name
        for name in podline.__all__
        if name != "__version__" and id(getattr(podline, name)) not in rendered
    ]
    assert not missing, (
        f"podline.__all__ names not rendered by docs/reference/*.md: {', '.join(missing)}; add "
        "a '::: podline.NAME' line to the reference page where it belongs"
    )
