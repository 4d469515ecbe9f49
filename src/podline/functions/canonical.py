"""The canonical text of Python syntax: one string per piece of code, the same on every Python.

Code identity hashes what a function *does*, so it needs a form of its syntax tree that ignores
formatting, comments and docstrings and that does not change when Python does. ``ast.dump``
is not such a form: its output changes between minor versions (3.12 shows the new empty
``type_params`` of every function, 3.13 leaves out empty lists and ``None`` fields), so hashing
it made every identity change with the interpreter.

``canonical_text(node)`` walks the tree itself and writes ``Kind(field=value,...)`` with:

* fields in name order, and every field that is ``None`` or an empty list left out, so a field
  a later Python adds with an empty default (``type_params``, ``default_value``) changes
  nothing;
* no positions (line and column numbers) and no ``type_comment`` (a comment) or ``kind``
  (the ``u`` prefix of a string, which does not change its value);
* docstrings left out: the first statement of a module, class or function body when it is a
  string literal (a body left empty reads as ``pass``);
* the literal text of an f-string merged into one part between replacement fields, with
  empty parts left out (Python versions split it differently);
* constants written by type and exact value (``int:0x2a``, ``float:0x1.8p+0``, strings by
  length and characters), never by ``repr``, whose escaping follows the Unicode tables of the
  running Python.

This module needs nothing but the standard library, so a test can load it under other Python
versions and compare the texts they produce.
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["canonical_text"]

#: Fields that carry no meaning: comments and spelling, not behaviour.
_IGNORED_FIELDS = frozenset({"type_comment", "kind"})
_BODY_OWNERS = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def canonical_text(node: ast.AST, *, drop_decorators: bool = False) -> str:
    """The canonical text of ``node`` (see the module docs); ``drop_decorators`` leaves out
    the decorators of ``node`` itself (not of what it contains)."""
    out: list[str] = []
    # An explicit stack, not recursion: a long chain of operators nests deeper than the
    # interpreter's recursion limit. Items are text to write (str) or nodes and lists still
    # to expand; each expansion pushes its parts in reverse, so they pop in order.
    stack: list[Any] = []
    _push_node(stack, node, drop_decorators)
    push = stack.append
    while stack:
        item = stack.pop()
        if type(item) is str:
            out.append(item)
        elif type(item) is list:
            push("]")
            for value in reversed(item):
                push(",")
                push(value if isinstance(value, ast.AST | list) else _constant(value))
            push("[")
        else:
            _push_node(stack, item, False)
    return "".join(out)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _push_node(stack: list[Any], node: ast.AST, drop_decorators: bool) -> None:
    cls = type(node)
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(sorted(set(cls._fields) - _IGNORED_FIELDS, reverse=True))
    stack.append(")")
    for name in fields:  # in reverse name order: they pop in name order
        if drop_decorators and name == "decorator_list":
            continue
        value: Any = getattr(node, name, None)
        if name == "body" and isinstance(node, _BODY_OWNERS):
            value = _without_docstring(value)
        elif name == "values" and cls is ast.JoinedStr:
            value = _joined_text(value)
        if value is None or (type(value) is list and not value):
            continue
        stack.append(",")
        stack.append(value if isinstance(value, ast.AST | list) else _constant(value))
        stack.append(f"{name}=")
    stack.append(f"{cls.__name__}(")


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def _joined_text(values: list[ast.expr]) -> list[ast.expr]:
    """The parts of an f-string with adjacent literal text merged and empty text left out:
    3.12.1 ends a nested format spec with an empty literal that 3.11 and 3.13 do not have."""
    parts: list[ast.expr] = []
    for value in values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            if not value.value:
                continue
            last = parts[-1] if parts else None
            if isinstance(last, ast.Constant) and isinstance(last.value, str):
                parts[-1] = ast.Constant(last.value + value.value)
                continue
        parts.append(value)
    return parts


def _constant(value: object) -> str:
    """An exact, version-independent spelling of a leaf value (a constant or a field such as
    a name or an operator count)."""
    if value is None or value is Ellipsis or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return f"int:{value:#x}"  # hex: no digit limit, unlike str() of a huge int
    if isinstance(value, float):
        return f"float:{value.hex()}"
    if isinstance(value, complex):
        return f"complex:{value.real.hex()},{value.imag.hex()}"
    if isinstance(value, str):
        return f"str:{len(value)}:{value}"
    # What is left in a tree from ast.parse is bytes; anything else is a misuse.
    assert isinstance(value, bytes), f"unexpected {type(value).__qualname__} in a syntax tree"
    return f"bytes:{value.hex()}"
