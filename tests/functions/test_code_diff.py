"""``code_changes``: two code structures of ``describe_code`` compared entry by entry, naming
the function, helper, class, constant, closure value or import that changed (what
``pipeline.plan()`` and ``explain()`` print for changed code)."""

from __future__ import annotations

import json

from conftest import ModuleTree
from podline.functions import describe_code
from podline.functions.code_diff import code_changes

BEFORE = """
from math import floor as rnd

K = 2


class Rule:
    def apply(self, x):
        return x + 1


def h(x):
    return x * K


def old(x):
    return x


def make(step):
    def add(x):
        return x + step

    return add


add = make(1)


def f(x):
    return rnd(h(x)) + old(x) + Rule().apply(x) + add(x)
"""


def structure(project: ModuleTree) -> dict[str, object]:
    return describe_code(project.load("mod").f).structure


def test_each_kind_of_change_is_named(user_project: ModuleTree) -> None:
    user_project.write("mod.py", BEFORE)
    before = structure(user_project)
    assert code_changes(before, before) == []
    for old, new in [
        ("from math import floor", "from math import ceil"),
        ("K = 2", "K = 3"),
        ("return x + 1", "return x + 2"),
        ("return x * K", "return x * K + 1"),
        ("def old(x):\n    return x", "def new(x):\n    return x"),
        ("+ old(x) +", "+ new(x) +"),
        ("make(1)", "make(2)"),
        ("+ add(x)\n", "+ add(x) + 0\n"),
    ]:
        user_project.edit("mod.py", old, new)
    assert code_changes(before, structure(user_project)) == [
        "class `Rule` changed",
        "function `f` changed",
        "helper `h` changed",
        "constant `K` changed, read by `h`",
        "`rnd` in `f` now is math:ceil (was math:floor)",
        "closure value `step` of `make.<locals>.add` changed",
        "helper `new` added",
        "helper `old` no longer used",
    ]


def test_a_constant_read_by_several_helpers_is_named_once(user_project: ModuleTree) -> None:
    user_project.write(
        "mod.py",
        "K = 1\n\ndef a(x):\n    return x + K\n\ndef b(x):\n    return x * K\n\n"
        "def f(x):\n    return a(x) + b(x)\n",
    )
    before = structure(user_project)
    user_project.edit("mod.py", "K = 1", "K = 5")
    assert code_changes(before, structure(user_project)) == [
        "constant `K` changed, read by `a`, `b`"
    ]


def test_a_helper_held_by_a_module_value_is_named(user_project: ModuleTree) -> None:
    source = (
        "def ridge(x):\n    return x * 2\n\n\nMODELS = {'ridge': ridge}\n\n\n"
        "def f(name, x):\n    return MODELS[name](x)\n"
    )
    user_project.write("mod.py", source)
    before = structure(user_project)
    user_project.edit("mod.py", "return x * 2", "return x * 3")
    assert code_changes(before, structure(user_project)) == ["helper `ridge` changed"]


def test_a_name_an_unedited_function_now_counts_is_named(user_project: ModuleTree) -> None:
    """A structure stored by a podline that did not follow module-level values (before
    2026-12-07: ``TABLE`` was not in it) against today's of the same code: the function
    is not 'changed' (nor its version or schemas: plan() said so); the name that now counts
    is named (user test 9: an upgrade recomputed such functions once, unexplained)."""
    user_project.write(
        "mod.py",
        "TABLE = {'a': 2}\n\ndef h(x):\n    return x\n\ndef f(x):\n    return h(x) * TABLE['a']\n",
    )
    now = structure(user_project)
    older = json.loads(json.dumps(now))
    assert "defined" in older["entries"]["f"]["refs"].pop("TABLE")
    assert code_changes(older, now) == ["`TABLE` read by `f` now counts in its identity"]
    assert code_changes(now, older) == ["`TABLE` read by `f` no longer counts in its identity"]


def test_a_class_attribute_set_at_run_time_is_named(user_project: ModuleTree) -> None:
    """A class attribute counted by its value (decision 96) that changed: named, not 'its
    code changed' (a stale notebook pipeline's error, plan()'s reason)."""
    user_project.write(
        "mod.py",
        "class Cfg:\n    factor = 10.0\n\ndef f(x):\n    return x + Cfg.factor\n",
    )
    module = user_project.load("mod")
    before = describe_code(module.f).structure
    module.Cfg.factor = 20.0
    after = describe_code(module.f).structure
    assert code_changes(before, after) == ["attribute `Cfg.factor` changed"]
    module.Cfg.factor = 30.0
    assert code_changes(after, describe_code(module.f).structure) == [
        "attribute `Cfg.factor` changed"
    ]
