"""What changed between two code structures, in words: the function, helper, class, constant
or closure value, as ``pipeline.plan()`` and ``pipeline.explain()`` name it.

``code_changes(old, new)`` compares two structures of ``describe_code`` entry by entry (they
are keyed by qualified name, so an entry is the same definition in both):

* an entry whose canonical code differs: ``function `f` changed`` for the function itself,
  ``helper `scale` changed`` for another function, ``class `Rule` changed``;
* a name an entry reads that now has another value: ``constant `FACTOR` changed, read by
  `scale```, ``closure value `n` of `make.<locals>.add` changed``;
* a class attribute counted by its value (set as the program runs) with another value:
  ``attribute `Cfg.factor` changed``;
* a name bound to another import or definition: ```mean` in `f` now is statistics:mean (was
  numpy:mean)``;
* entries that appeared or are no longer reached: ``helper `clip` added``, ``helper `old`
  no longer used``;
* a name an unedited entry reads that counts now and did not (or the reverse): ```TABLE` read
  by `f` now counts in its identity``. The code is the same, so what it reads is: either the
  podline that stored the earlier structure did not follow that name (podline 2026-12-07
  began following module-level values by their statements, docs/identity.md), or the name
  was bound to something identities leave out (a value of another module) and now is not.

Names an edited entry starts or stops reading are part of its edit and not listed again.
Values are stored as hashes, so a changed constant is named, not shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["code_changes"]


def code_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The differences between code structures ``old`` and ``new``, old to new, in a
    deterministic order (see the module docs); empty when they are equal."""
    before: Mapping[str, Any] = old.get("entries", {})
    after: Mapping[str, Any] = new.get("entries", {})
    root = new.get("root")
    edited: list[str] = []
    constants: dict[str, list[str]] = {}  # a constant read by several entries: named once
    rebound: list[str] = []
    counted: list[str] = []
    for key in sorted(before.keys() & after.keys()):
        was, now = before[key], after[key]
        if was.get("code") != now.get("code"):
            edited.append(f"{_entry(key, now, root)} changed")
        # A class's attributes counted by value (set at run time: decision 96).
        olds, news = was.get("values", {}), now.get("values", {})
        rebound += [
            f"attribute `{key}.{name}` changed"
            for name in sorted(olds.keys() | news.keys())
            if olds.get(name) != news.get(name)
        ]
        for part in ("refs", "closure"):
            olds, news = was.get(part, {}), now.get(part, {})
            if was.get("code") == now.get("code"):
                counted += [
                    f"`{name}` read by `{key}` now counts in its identity"
                    for name in sorted(news.keys() - olds.keys())
                ]
                counted += [
                    f"`{name}` read by `{key}` no longer counts in its identity"
                    for name in sorted(olds.keys() - news.keys())
                ]
            for name in sorted(olds.keys() & news.keys()):
                a, b = olds[name], news[name]
                if a == b:
                    continue
                if "value" in a and "value" in b and part == "closure":
                    rebound.append(f"closure value `{name}` of `{key}` changed")
                elif "value" in a and "value" in b:
                    constants.setdefault(name, []).append(f"`{key}`")
                else:
                    rebound.append(f"`{name}` in `{key}` now is {_target(b)} (was {_target(a)})")
    return [
        *edited,
        *(f"constant `{n}` changed, read by {', '.join(r)}" for n, r in constants.items()),
        *rebound,
        *counted,
        *(f"{_entry(key, after[key], root)} added" for key in sorted(after.keys() - before.keys())),
        *(
            f"{_entry(k, before[k], root)} no longer used"
            for k in sorted(before.keys() - after.keys())
        ),
    ]


def _entry(key: str, entry: Mapping[str, Any], root: str | None) -> str:
    kind = entry.get("kind", "function")
    if key == root:
        return f"function `{key}`"
    return f"{'helper' if kind == 'function' else kind} `{key}`"


def _target(ref: Mapping[str, Any]) -> str:
    """How a reference reads: the definition, import or object it names, or a value."""
    if "entry" in ref:
        return f"`{ref['entry']}`"
    if "import" in ref:
        return str(ref["import"])
    if "object" in ref:
        return str(ref["object"])
    return "a constant"
