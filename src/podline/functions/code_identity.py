"""Code identity: a hash of what a function does, stable under reformatting and comments.

``code_identity(fn)`` hashes a normalized form of the function's source: its syntax tree with
line numbers, formatting, comments and docstrings removed, and the decorators of the function
itself dropped (the pod decorator's arguments are part of the identity separately). It also
covers, transitively:

* helper functions and classes **defined in the same module** that the code refers to by name
  (their own normalized code, and what *they* refer to);
* module-level **constants** the code refers to: immutable values (numbers, strings, bytes,
  enum members, tuples and frozensets of those), hashed canonically. Mutable module state (a
  list used as a cache or counter, a dict being filled) is not followed: it changes as the
  program runs, which would make the identity drift;
* **closure** variables (their values, mutable ones included, since a closure usually captures
  configuration; a closed-over function counts as a helper).

Imported functions, modules and anything defined elsewhere are not followed: a change in a
library does not change the identity (pin ``version=`` when that matters). A global whose
value cannot be hashed canonically is left out (its name still counts, through the code).

Bound methods and functions without readable source (built-ins, code typed at a bare REPL)
are rejected with a ``FunctionIdentityError`` that says what to do instead. A lambda is
accepted when its source line holds exactly one lambda with its parameters.
"""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any

from podline.errors import FunctionIdentityError, HashingError
from podline.hashing import ContentHash, hash_value

__all__ = ["code_identity", "code_structure"]

_ADVICE = "use a module-level function, or pin the identity with identity='version'"


def code_identity(fn: Callable[..., Any]) -> ContentHash:
    """The code hash of ``fn`` (see the module docs for what it covers)."""
    return hash_value(code_structure(fn))


def code_structure(fn: Callable[..., Any]) -> dict[str, Any]:
    """The plain-data structure that ``code_identity`` hashes."""
    if inspect.ismethod(fn):
        raise FunctionIdentityError(
            f"{_qualname(fn)} is a bound method: its result may depend on the instance, which "
            f"podline cannot hash; {_ADVICE}"
        )
    if not isinstance(fn, types.FunctionType):
        raise FunctionIdentityError(
            f"{fn!r} is not a Python function (got {type(fn).__qualname__}); {_ADVICE}"
        )
    return _Collector(fn.__module__).function(fn, root=True)


class _Collector:
    """Walks a function and what it refers to; each helper is visited once."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.visiting: set[int] = set()

    def function(self, fn: types.FunctionType, *, root: bool = False) -> dict[str, Any]:
        key = id(fn)
        if key in self.visiting:  # mutual recursion: the name alone stands for the helper
            return {"recursive": fn.__qualname__}
        self.visiting.add(key)
        node = _function_node(fn)
        if root:
            _drop_decorators(node)
        structure: dict[str, Any] = {
            "code": _normalized_dump(node),
            "globals": self.references(node, fn.__globals__),
        }
        closure = self.closure(fn)
        if closure:
            structure["closure"] = closure
        return structure

    def references(self, node: ast.AST, namespace: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in sorted(_loaded_names(node)):
            if name not in namespace:
                continue  # a local, a parameter or a builtin
            described = self.describe(namespace[name])
            if described is not None:
                found[name] = described
        return found

    def closure(self, fn: types.FunctionType) -> dict[str, Any]:
        if not fn.__closure__:
            return {}
        values: dict[str, Any] = {}
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=True):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the variable was never assigned
                continue
            described = self.describe(value, strict_name=name, owner=fn)
            if described is not None:
                values[name] = described
        return values

    def describe(
        self,
        value: Any,
        *,
        strict_name: str | None = None,
        owner: types.FunctionType | None = None,
    ) -> Any:
        """What a referenced value contributes, or None when it is not followed."""
        if isinstance(value, types.FunctionType) and (
            value.__module__ == self.module or strict_name is not None
        ):
            return {"function": self.function(value)}
        if inspect.isclass(value) and value.__module__ == self.module:
            return {"class": _class_dump(value)}
        if isinstance(value, types.ModuleType) or callable(value):
            return None  # imported code is not followed
        if strict_name is None and not _is_constant(value):
            return None  # mutable module state (caches, counters) is not part of the code
        try:
            return {"value": hash_value(value)}
        except HashingError as exc:
            if strict_name is None:
                return None  # an unhashable global: its name still counts through the code
            assert owner is not None
            raise FunctionIdentityError(
                f"{_qualname(owner)} closes over {strict_name!r}, a "
                f"{type(value).__qualname__} that cannot be hashed ({exc}); pass it as an "
                f"argument, make it a module-level constant, or use identity='version'"
            ) from None


_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, type(None), enum.Enum, ContentHash)


def _is_constant(value: Any) -> bool:
    """Immutable plain data: what a module-level constant is."""
    if isinstance(value, tuple | frozenset):
        return all(_is_constant(item) for item in value)
    return isinstance(value, _CONSTANT_TYPES)


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _source(obj: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        raise FunctionIdentityError(
            f"cannot read the source of {_qualname(obj)} ({exc}); define it in a file or a "
            "notebook cell (code typed at a bare interpreter prompt has no source), or pin "
            "the identity with identity='version'"
        ) from None


def _function_node(fn: types.FunctionType) -> ast.AST:
    source = _source(fn)
    if fn.__name__ != "<lambda>":
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.name == fn.__name__
            ):
                return node
        raise FunctionIdentityError(f"cannot find the definition of {_qualname(fn)}; {_ADVICE}")
    return _lambda_node(fn, source)


def _lambda_node(fn: types.FunctionType, source: str) -> ast.AST:
    params = list(fn.__code__.co_varnames[: fn.__code__.co_argcount])
    lambdas = [
        node
        for node in ast.walk(_parse_fragment(source))
        if isinstance(node, ast.Lambda) and [a.arg for a in node.args.args] == params
    ]
    if len(lambdas) != 1:
        raise FunctionIdentityError(
            f"cannot identify the lambda {_qualname(fn)} from its source line "
            f"({len(lambdas)} candidates); give it a name with def, or use identity='version'"
        )
    return lambdas[0]


def _parse_fragment(source: str) -> ast.AST:
    """Parse source lines that may be a fragment of a larger expression (as lambdas are)."""
    stripped = source.strip().rstrip(",")
    for candidate in (source, f"(\n{stripped}\n)", f"f(\n{stripped}\n)"):
        try:
            return ast.parse(candidate)
        except SyntaxError:
            continue
    return ast.Module(body=[], type_ignores=[])


def _drop_decorators(node: ast.AST) -> None:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        node.decorator_list = []


def _strip_docstrings(node: ast.AST) -> None:
    for sub in ast.walk(node):
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = sub.body
            first = body[0] if body else None
            is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            if is_doc and isinstance(first.value.value, str):  # type: ignore[union-attr]
                sub.body = body[1:] or [ast.Pass()]


def _normalized_dump(node: ast.AST) -> str:
    _strip_docstrings(node)
    return ast.dump(node, annotate_fields=True, include_attributes=False)


def _class_dump(cls: type) -> str:
    tree = ast.parse(_source(cls))
    return _normalized_dump(tree)


def _loaded_names(node: ast.AST) -> set[str]:
    return {
        sub.id
        for sub in ast.walk(node)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)
    }
