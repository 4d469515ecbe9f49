"""Whether a module-level value still is what its file's text makes it.

Code identity follows a module-level value it cannot hash by value (a list, a dict, a set, a
tuple holding a list) by the text of the statements that make it (``SourceFile.defining``).
The running process holds the value its module made when it was imported; if the file was
edited since (by the user, or by a ``git pull`` in a shared working copy), the code runs with
the old value under the identity of the new text, and its results are served to whoever runs
the new value. Decision 91 catches a function edited in place by compiling the file's text
again; a value is checked here the same way, by evaluating the text again, where that is
safe and tells: ``written_value`` finds

* the one module-level statement binding the name, ``NAME = <literal>`` (or annotated), whose
  right-hand side ``ast.literal_eval`` evaluates (numbers, strings, bytes, tuples, lists,
  dicts, sets, ``None``, booleans, negative numbers), and
* no other use of the name anywhere in the module (functions included) that could change the
  value: no other binding (``X += 1``, ``global X``, ``del X``, an import, a ``def``), no
  item assignment, no method call that may mutate (``X.append``, ``X.update``), no passing it
  to a function other than a few built-ins that only read (``len``, ``sorted``), no alias
  (``y = X``, ``return X``). When the value holds lists or dicts, an item taken out of it
  (``X["k"]``, ``for row in X``) must be only read as well.

Then the live value must be that literal: the same types, equal, ``-0.0`` apart from ``0.0``,
``NaN`` equal to itself, ``1``, ``1.0`` and ``True`` apart (``same_value``). A value made any
other way (a call, a comprehension, a numpy array), or one the module changes as it runs (a
cache, a registry filled by a decorator), cannot be checked this way and is not.
"""

from __future__ import annotations

import ast
import bisect
import math
import re
from typing import Any, Literal

__all__ = ["same_value", "written_value"]

#: How a use of a value may affect it: only reads it; takes items out of it (which matters
#: when the items are mutable); or may change or alias it.
_Use = Literal["read", "item", "other"]

#: Methods of lists, dicts and sets that change nothing and return no item.
_READ_METHODS = frozenset({"count", "index", "isdisjoint", "issubset", "issuperset", "keys"})
#: Methods that change nothing and return items (or containers sharing them).
_ITEM_METHODS = frozenset(
    {"copy", "difference", "get", "intersection", "items", "symmetric_difference", "union"}
)
#: Built-ins that only read their argument.
_READ_CALLS = frozenset(
    {"abs", "all", "any", "bool", "float", "format", "hash", "int", "isinstance", "len", "print"}
    | {"repr", "round", "str", "sum"}
)
#: Built-ins that change nothing and return items (or containers sharing them).
_ITEM_CALLS = frozenset(
    {"dict", "enumerate", "filter", "frozenset", "iter", "list", "map", "max", "min", "next"}
    | {"reversed", "set", "sorted", "tuple", "zip"}
)
_STAR_IMPORT = re.compile(r"\bimport\s+\*")
#: Expressions whose value is a new object that only reads its operands.
_READING = (ast.Compare, ast.UnaryOp, ast.FormattedValue, ast.Expr, ast.Assert)


def written_value(tree: ast.Module, text: str, name: str) -> tuple[ast.stmt, Any] | None:
    """The statement ``name = <literal>`` of the module and the literal's value, when the
    module makes ``name`` only there and never changes it (see the module docs); else None."""
    found = [s for s in tree.body if _assigned(s) == name]
    if len(found) != 1:
        return None
    statement = found[0]
    value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
    if value is None:
        return None
    try:
        literal = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if _STAR_IMPORT.search(text):
        return None  # ``from m import *`` may bind any name, without spelling it
    uses = _uses(tree, text, name, statement)
    if uses is None or ("item" in uses and not _flat(literal)):
        return None
    return statement, literal


def _assigned(statement: ast.AST) -> str | None:
    """The name a plain one-target assignment binds (``X = ...``, ``X: T = ...``)."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
    elif isinstance(statement, ast.AnnAssign):
        target = statement.target
    else:
        return None
    return target.id if isinstance(target, ast.Name) else None


def _uses(tree: ast.Module, text: str, name: str, assignment: ast.stmt) -> set[_Use] | None:
    """How the module uses ``name`` besides ``assignment``; None if it may change it.

    Every use or binding spells the name, so only the lines that spell it are looked at (a
    regular expression over the text): on each, the innermost statements holding the line
    and the headers of those around them (a ``for``'s target and iterable, a function's
    arguments and decorators), never a whole function or module."""
    uses: set[_Use] = set()
    lines = _lines_spelling(text, name)
    if lines is None:  # every statement, whole
        return uses if all(_visit(s, None, name, assignment, uses) for s in tree.body) else None
    firsts = [_span(s)[0] for s in tree.body]
    for line in lines:
        # The top-level statements holding the line: the last one starting on or before it,
        # and those before it on the same line (``a = 1; b = 2``).
        at = bisect.bisect_right(firsts, line) - 1
        while at >= 0 and _span(tree.body[at])[1] >= line:
            if not _visit(tree.body[at], line, name, assignment, uses):
                return None
            at -= 1
    return uses


#: A statement, or a part of one that holds statements.
_Block = ast.stmt | ast.excepthandler | ast.match_case
#: The other parts of a statement that have a position (``arguments``, ``withitem`` and
#: ``comprehension`` have none: they are looked at whole).
_POSITIONED = (ast.expr, ast.arg, ast.keyword, ast.alias, ast.pattern)


def _visit(
    node: _Block, line: int | None, name: str, assignment: ast.stmt, uses: set[_Use]
) -> bool:
    """Add to ``uses`` how ``node`` uses ``name`` in its own parts (expressions, patterns)
    and in its inner statements that hold ``line`` (None: all of them); False if it may
    change the value."""
    if _rebinds(node, name):
        return False
    if _assigned(node) == "__all__" or (
        isinstance(node, ast.AugAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "__all__"
    ):
        return True  # names exported: a read by ``import *`` elsewhere
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _Block):
            if _holds(child, line) and not _visit(child, line, name, assignment, uses):
                return False
            continue
        if _elsewhere(child, line):
            continue  # another line's part: looked at for that line, if it spells the name
        parents: dict[int, ast.AST] = {id(child): node}
        for sub in ast.walk(child):
            for inner in ast.iter_child_nodes(sub):
                parents[id(inner)] = sub
            if _rebinds(sub, name) or (isinstance(sub, ast.Constant) and sub.value == name):
                return False  # bound, or named in a string: ``globals()["X"] = ...``
            if not isinstance(sub, ast.Name) or sub.id != name:
                continue
            if isinstance(sub.ctx, ast.Store) and node is assignment:
                continue  # the assignment itself
            use = _use(sub, parents) if isinstance(sub.ctx, ast.Load) else "other"
            if use == "other":
                return False
            uses.add(use)
    return True


def _elsewhere(node: ast.AST, line: int | None) -> bool:
    """Whether ``node`` is known to lie wholly on other lines than ``line``."""
    if line is None or not isinstance(node, _POSITIONED):
        return False
    return not node.lineno <= line <= (node.end_lineno or node.lineno)


def _lines_spelling(text: str, name: str) -> list[int] | None:
    """The lines (1-based) where ``name`` is spelled (in code, a string or a comment), or
    None (every line) when the text's lines may not be Python's."""
    if "\r" in text or "\f" in text or "\v" in text:
        return None
    starts = [0, *(m.end() for m in re.finditer("\n", text))]
    found = {bisect.bisect_right(starts, m.start()) for m in re.finditer(rf"\b{name}\b", text)}
    return sorted(found)


def _holds(node: _Block, line: int | None) -> bool:
    if line is None:
        return True
    first, last = _span(node)
    return first <= line <= last


def _span(node: _Block) -> tuple[int, int]:
    """The first and last lines of ``node``, decorators included."""
    if isinstance(node, ast.match_case):  # no position of its own
        last = node.body[-1]
        return node.pattern.lineno, last.end_lineno or last.lineno
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)]), node.end_lineno or node.lineno


def _rebinds(node: ast.AST, name: str) -> bool:
    """Whether ``node`` binds ``name`` other than by a ``Name`` target."""
    if isinstance(node, ast.Global | ast.Nonlocal):
        return name in node.names
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.alias):
        return (node.asname or node.name.partition(".")[0]) == name
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        return node.name == name
    if isinstance(node, ast.MatchMapping):
        return node.rest == name
    return False


def _use(node: ast.expr, parents: dict[int, ast.AST]) -> _Use:
    """How the expression ``node``, which evaluates to the value, is used."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Subscript):
        if parent.value is not node:
            return "read"  # an index: ``table[X]``
        if not isinstance(parent.ctx, ast.Load):
            return "other"  # ``X[k] = v``, ``del X[k]``
        return "read" if _use(parent, parents) == "read" else "item"
    if isinstance(parent, ast.Attribute):
        if not isinstance(parent.ctx, ast.Load):
            return "other"
        if parent.attr in _READ_METHODS:
            return "read"
        return "item" if parent.attr in _ITEM_METHODS else "other"
    if isinstance(parent, ast.Call):
        if parent.func is node:
            return "read"
        called = parent.func.id if isinstance(parent.func, ast.Name) else None
        if node not in parent.args or called is None:
            return "other"
        if called in _READ_CALLS:
            return "read"
        return "item" if called in _ITEM_CALLS else "other"
    if isinstance(parent, _READING):
        return "read"
    if isinstance(parent, ast.IfExp) and parent.test is node:
        return "read"
    if isinstance(parent, ast.BoolOp | ast.IfExp):
        return _use(parent, parents)  # the value itself may be the result
    if isinstance(parent, ast.BinOp | ast.Starred):
        return "item"  # a new container holding the same items
    if isinstance(parent, ast.comprehension | ast.For | ast.AsyncFor) and parent.iter is node:
        return "item"
    return "other"  # an alias, an argument, a returned value: anything may change it


def _flat(value: Any) -> bool:
    """Whether every item of ``value`` (a container made by ``literal_eval``) is immutable,
    so that taking one out can change nothing."""
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set):
        items = list(value)
    else:
        return True
    return all(_immutable(item) for item in items)


def _immutable(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_immutable(item) for item in value)
    return not isinstance(value, list | dict | set)


def same_value(written: Any, live: Any) -> bool:
    """Whether ``live`` is the value ``written`` (made by ``literal_eval``): the same types at
    every depth and equal values; ``-0.0`` is not ``0.0`` and ``NaN`` is itself."""
    if type(written) is not type(live):
        return False
    if isinstance(written, float):
        return _same_float(written, live)
    if isinstance(written, complex):
        return _same_float(written.real, live.real) and _same_float(written.imag, live.imag)
    if isinstance(written, list | tuple):
        return len(written) == len(live) and all(map(same_value, written, live))
    if isinstance(written, dict):
        return len(written) == len(live) and all(
            same_value(k, j) and same_value(v, w)
            for (k, v), (j, w) in zip(written.items(), live.items(), strict=True)
        )
    if isinstance(written, set):
        # Items of a literal set are numbers, strings, bytes, None and tuples of them: their
        # type and repr tell them apart (1, 1.0 and True; -0.0 and 0.0).
        return sorted(map(_typed_repr, written)) == sorted(map(_typed_repr, live))
    return bool(written == live)


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def _typed_repr(value: Any) -> str:
    if isinstance(value, tuple):
        return f"tuple({', '.join(map(_typed_repr, value))})"
    return f"{type(value).__name__}:{value!r}"
