"""``PacketFunction``: a typed Python function seen as packet in, packet out.

It owns what podline knows about the function itself: its input schema (from the parameter
annotations, or ``input_schema=``; parameters with defaults are optional), its output schema
(from the return annotation and ``output_keys``: one key takes the whole value, N keys take a
tuple or list of N values), whether it is ``async``, and its identity:

``identity="code"`` (default)
    name, version, input and output schemas, output keys and the code hash
    (``code_identity``): editing the function or a helper of the user's project changes it,
    reformatting or editing comments and docstrings does not. The code is checked where the
    function is defined and hashed when the identity is first needed, so helpers defined
    further down the module count.
``identity="version"``
    the same without the code hash, for users who bump ``version=`` by hand.

``depends_on=["numpy", ...]`` adds the installed versions of those distributions (or the
distributions providing those import names) to the identity, in either mode.

Returning ``SKIP`` drops the row. ``None`` is an ordinary value, valid only where the output
type allows it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, get_type_hints

from podline.columns import RESERVED_PREFIX, column_names, is_reserved
from podline.errors import FunctionDefinitionError, OutputValidationError, format_names
from podline.executors.base import is_async_function
from podline.functions.code_diff import code_changes
from podline.functions.code_identity import CodeIdentity, checked_function, describe_code
from podline.functions.project import dependency_versions
from podline.hashing import ContentHash, IdentityMixin
from podline.schema import (
    PodType,
    Schema,
    args_of,
    is_optional,
    normalize_type,
    origin_of,
    type_name,
)

__all__ = ["SKIP", "IdentityMode", "PacketFunction", "SkipType"]

IdentityMode = Literal["code", "version"]


class SkipType:
    """The type of ``SKIP``; annotate ``-> float | SkipType`` if you like."""

    _instance: SkipType | None = None

    def __new__(cls) -> SkipType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "podline.SKIP"

    def __reduce__(self) -> str:
        return "SKIP"  # unpickles to the module-level singleton

    def identity_structure(self) -> str:
        # A fixed identity, so a closure or nested function referring to SKIP can be hashed.
        return "podline.SKIP"


#: Return this from a packet function to drop the row (it is remembered, not recomputed).
SKIP: Final = SkipType()


class PacketFunction(IdentityMixin):
    """A typed function with a packet-level view of its inputs, outputs and identity."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        output_keys: str | Sequence[str],
        version: str = "v0",
        name: str | None = None,
        input_schema: Mapping[str, PodType] | None = None,
        output_schema: Mapping[str, PodType] | None = None,
        identity: IdentityMode = "code",
        depends_on: Iterable[str] = (),
    ) -> None:
        if not callable(fn):
            raise FunctionDefinitionError(f"expected a function, got {type(fn).__qualname__}")
        if identity not in ("code", "version"):
            raise FunctionDefinitionError(f"identity must be 'code' or 'version', got {identity!r}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        if not self.name or self.name == "<lambda>":
            raise FunctionDefinitionError("a lambda needs an explicit name=")
        self.version = str(version)
        self.identity_mode: IdentityMode = identity
        self.is_async = is_async_function(fn)
        self.output_keys: tuple[str, ...] = column_names(output_keys)
        if not self.output_keys:
            raise FunctionDefinitionError(
                f"{self.name}: output_keys must name at least one key. A pod's result is its "
                "output packet: for a function run for its side effects, return what it did, "
                "e.g. the path of the file it wrote (-> Path, output_keys='written'), or "
                "annotate -> None with one key (output_keys='done'): either way each call "
                "is remembered and not repeated"
            )
        if len(set(self.output_keys)) != len(self.output_keys):
            raise FunctionDefinitionError(f"{self.name}: output_keys repeat: {self.output_keys}")
        reserved = [key for key in self.output_keys if is_reserved(key)]
        if reserved:
            # Output columns sit beside podline's hidden ones (record ids, source info) in
            # the rows and stores it writes: '__record_id' would collide with the memo's id.
            raise FunctionDefinitionError(
                f"{self.name}: output key(s) {format_names(reserved)} start with the reserved "
                f"prefix {RESERVED_PREFIX!r}, which podline keeps for its hidden columns"
            )
        hints = _type_hints(fn, self.name)
        params = _parameters(fn, self.name) if input_schema is None else []
        #: Parameter names in call order when every parameter may be passed positionally.
        self.positional: tuple[str, ...] | None = (
            tuple(p.name for p in params)
            if params and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
            else None
        )
        self.input_schema = (
            Schema(input_schema, optional=_defaults(fn) & set(input_schema))
            if input_schema is not None
            else _input_schema(fn, hints, self.name)
        )
        self.output_schema = (
            Schema(output_schema)
            if output_schema is not None
            else _output_schema(hints, self.output_keys, self.name)
        )
        if tuple(self.output_schema) != self.output_keys:
            raise FunctionDefinitionError(
                f"{self.name}: output_schema names {list(self.output_schema)} but output_keys "
                f"are {list(self.output_keys)}"
            )
        if isinstance(depends_on, str):
            depends_on = [depends_on]
        #: ``{distribution: version}`` of ``depends_on``, part of the identity.
        self.dependencies = dependency_versions(depends_on, self.name)
        if identity == "code":
            # Checked now, so that an unidentifiable function fails where it is defined;
            # hashed at first use (``code``), when the rest of its module exists too.
            checked_function(fn)

    @functools.cached_property
    def code(self) -> CodeIdentity | None:
        """The code identity (hash, structure, installed packages used); None with
        ``identity="version"``."""
        return describe_code(self.fn) if self.identity_mode == "code" else None

    def refresh(self) -> list[str]:
        """Describe the code again if it may have changed since it was hashed, and take the
        new identity; returns what changed (``code_changes``), empty if nothing did.

        Only a function of ``__main__`` (a notebook cell, an interactive session, a script)
        is described again: there a later cell may define a helper or a constant anew, or
        change a table, while the function object stays the same. A module's code is fixed
        once it is imported (an edit on disk needs a reload, which makes new functions)."""
        if (
            self.identity_mode != "code"
            or "code" not in self.__dict__
            or getattr(self.fn, "__module__", None) != "__main__"
        ):
            return []
        before: CodeIdentity = self.__dict__["code"]
        current = describe_code(self.fn)
        if current.hash == before.hash:
            return []
        self.__dict__["code"] = current
        self._content_hash_cache = self._pipeline_hash_cache = None
        return code_changes(before.structure, current.structure) or ["its code changed"]

    @property
    def code_hash(self) -> ContentHash | None:
        """The hash of the code (``code_identity``); None with ``identity="version"``."""
        return None if self.code is None else self.code.hash

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"PacketFunction({self.name!r}, version={self.version!r})"

    @property
    def label(self) -> str:
        """The function's name, for display."""
        return self.name

    def identity_structure(self) -> Any:
        return {
            "name": self.name,
            "version": self.version,
            "inputs": self.input_schema,
            "outputs": self.output_schema,
            "output_keys": self.output_keys,
            "code": self.code_hash,
            **({"depends_on": self.dependencies} if self.dependencies else {}),
        }

    def to_output(self, value: Any) -> dict[str, Any] | SkipType:
        """The output packet values for one return value, or ``SKIP``; raises
        ``OutputValidationError`` for a wrong shape or a None the type does not allow."""
        outputs, skipped, failures = self.split_outputs([value])
        if failures:
            raise failures[0]
        return SKIP if skipped[0] else {k: column[0] for k, column in outputs.items()}

    def split_outputs(
        self, values: Sequence[Any]
    ) -> tuple[dict[str, list[Any]], list[bool], dict[int, BaseException]]:
        """Output columns for many return values at once.

        Returns (column per output key, whether each value was ``SKIP``, the
        ``OutputValidationError`` of each position whose value has a wrong shape or a None the
        type does not allow). Skipped and failed positions hold None in every column.
        """
        keys = self.output_keys
        skipped = [v is SKIP for v in values]
        failures: dict[int, BaseException] = {}
        if len(keys) == 1:
            columns = {keys[0]: [None if s else v for v, s in zip(values, skipped, strict=True)]}
        else:
            empty = (None,) * len(keys)
            rows: list[Sequence[Any]] = []
            for i, (value, skip) in enumerate(zip(values, skipped, strict=True)):
                if not skip and not (isinstance(value, tuple | list) and len(value) == len(keys)):
                    failures[i] = OutputValidationError(
                        f"{self.name} must return a tuple or list of {len(keys)} values "
                        f"({', '.join(keys)}), got {_describe(value)}"
                    )
                rows.append(empty if skip or i in failures else value)
            transposed = list(zip(*rows, strict=True)) if rows else [()] * len(keys)
            columns = {k: list(column) for k, column in zip(keys, transposed, strict=True)}
        for key in keys:
            tp = self.output_schema[key]
            if _allows_none(tp):
                continue
            for i, v in enumerate(columns[key]):
                if v is None and not skipped[i] and i not in failures:
                    failures[i] = OutputValidationError(
                        f"{self.name} returned None for {key!r}, whose declared type "
                        f"{type_name(tp)} does not allow None; return podline.SKIP to drop the "
                        "row, or declare the output as T | None"
                    )
        return columns, skipped, failures


def _allows_none(tp: PodType) -> bool:
    return is_optional(tp) or tp is type(None)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__qualname__} {text[:80]}{'...' if len(text) > 80 else ''}"


def _type_hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    target = fn.func if isinstance(fn, functools.partial) else fn
    try:
        return get_type_hints(target)
    except Exception as exc:  # unresolvable forward references and the like
        raise FunctionDefinitionError(
            f"{name}: cannot resolve its type annotations: {exc}"
        ) from exc


def _parameters(fn: Callable[..., Any], name: str) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise FunctionDefinitionError(f"{name}: cannot read its signature: {exc}") from exc
    variadic = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    if variadic or positional:
        raise FunctionDefinitionError(
            f"{name}: parameters are matched to packet columns by name, so *args, **kwargs and "
            f"positional-only parameters are not supported: {format_names(variadic + positional)}"
        )
    return params


def _defaults(fn: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.default is not inspect.Parameter.empty}


def _input_schema(fn: Callable[..., Any], hints: Mapping[str, Any], name: str) -> Schema:
    params = _parameters(fn, name)
    missing = [p.name for p in params if p.name not in hints]
    if missing:
        raise FunctionDefinitionError(
            f"{name}: parameter(s) {format_names(missing)} have no type annotation; annotate "
            "them or pass input_schema="
        )
    fields = {p.name: normalize_type(hints[p.name], f"{name}({p.name})") for p in params}
    optional = {p.name for p in params if p.default is not inspect.Parameter.empty}
    return Schema(fields, optional=optional)


def _output_schema(hints: Mapping[str, Any], keys: tuple[str, ...], name: str) -> Schema:
    if "return" not in hints:
        raise FunctionDefinitionError(
            f"{name}: no return annotation; annotate it (e.g. -> float) or pass output_schema="
        )
    returned = _without_skip(hints["return"])
    if len(keys) == 1:
        return Schema({keys[0]: normalize_type(returned, f"{name} -> {keys[0]}")})
    items = args_of(returned)
    if origin_of(returned) not in (tuple, list) or (
        origin_of(returned) is tuple and len(items) != len(keys)
    ):
        raise FunctionDefinitionError(
            f"{name}: {len(keys)} output keys need a return annotation of tuple[...] with "
            f"{len(keys)} types, got {returned!r}"
        )
    if origin_of(returned) is list:  # list[T]: every key has type T
        items = tuple(items) * len(keys)
    return Schema(
        {key: normalize_type(tp, f"{name} -> {key}") for key, tp in zip(keys, items, strict=True)}
    )


def _without_skip(tp: Any) -> Any:
    """``T | SkipType`` -> ``T``: SKIP is a sentinel, not an output type."""
    members = args_of(tp)
    if SkipType in members:
        rest = [m for m in members if m is not SkipType]
        return functools.reduce(lambda a, b: a | b, rest)
    return tp
