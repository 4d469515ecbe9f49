"""Code identity: a hash of what a function does, stable under reformatting, comments and
Python upgrades, covering the project code it uses.

``describe_code(fn)`` walks the function and what it refers to, and returns a ``CodeIdentity``:
the hash, the plain-data structure it hashes, and the installed packages the code uses. What
counts (docs/identity.md has the full contract):

* the function's **syntax**, in the version-independent canonical form of ``canonical``
  (no comments, docstrings, formatting or positions), without its own decorators (the pod
  decorator's arguments are part of the pod's identity separately);
* **helper functions and classes** it refers to by name, transitively, when they are defined
  in the same module or in any module of the user's project (``project.file_origin``); a
  project module used as ``mod.helper`` counts through the attributes read from it, one used
  as a bare value counts as a whole; imports inside the function body are followed too;
* module-level **constants** it refers to (numbers, strings, bytes, enum members, tuples and
  frozensets of those), whatever module they come from, by value. Other values of the module
  it is read from (a date, a compiled pattern, a list inside a tuple, a dict, an instance) are
  followed by the module-level statements that name them (``SourceFile.defining``): editing
  ``CUTOFF = date(2024, 1, 1)`` or ``TABLE["k"] = 10`` recomputes, while what the program
  does to them as it runs (a list used as a cache) does not count. A literal one
  (``TABLE = {"k": 1}``) edited after its module was imported is an error
  (``SourceFile.check_value``): the value running would not be the one described;
* a followed class's constant attributes whose value its text does not give (computed at
  import, or a literal the program replaced: ``Config.factor = args.factor``), by value, as
  module-level constants count;
* **closure** variables, by value (mutable ones included: a closure usually captures
  configuration); a closed-over function counts as a helper;
* for a name it does not follow (standard library, installed packages, podline), the import
  statement that bound it (``numpy:mean``), so switching ``mean`` from numpy to statistics
  counts, while upgrading numpy does not. Installed packages are reported in ``packages``
  for the run manifest; ``depends_on=`` makes chosen versions part of a pod's identity.

The structure is a flat map of **entries**, one per function, class or whole module followed,
keyed by qualified name (``helper``, ``Rule``, ``make.<locals>.add#2`` when two share one);
each holds the SHA-256 of its canonical text (``code``) and what its names refer to
(``refs``, ``closure``): another entry, a constant's hash, an import or a named object.
Module names are kept beside it (``modules``) but not hashed, so moving a helper to another
module changes nothing. Comparing two structures entry by entry names what changed.

Bound methods and functions without readable source (built-ins, code typed at a bare REPL)
are rejected with a ``FunctionIdentityError`` that says what to do instead.
"""

from __future__ import annotations

import ast
import datetime
import enum
import hashlib
import importlib
import importlib.util
import inspect
import json
import linecache
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import Any, TypeGuard

import numpy as np

from podline.errors import FunctionIdentityError, HashingError
from podline.functions.project import Origin, file_origin, module_origin
from podline.functions.sources import Definition, ImportBinding, SourceFile, source_file
from podline.hashing import HASH_SCHEME, ContentHash, hash_value

__all__ = ["CodeIdentity", "code_identity", "code_structure", "describe_code"]

_ADVICE = "use a module-level function, or pin the identity with identity='version'"


@dataclass(frozen=True)
class CodeIdentity:
    """What ``describe_code`` found: the hash, the structure it hashes, and the top-level
    import names of the installed packages the code uses (not part of the hash)."""

    hash: ContentHash
    structure: dict[str, Any]
    packages: frozenset[str]
    #: The module of each entry (not hashed: moving a helper to another module is no change).
    modules: dict[str, str]


def code_identity(fn: Callable[..., Any]) -> ContentHash:
    """The code hash of ``fn`` (see the module docs for what it covers)."""
    return describe_code(fn).hash


def code_structure(fn: Callable[..., Any]) -> dict[str, Any]:
    """The plain-data structure that ``code_identity`` hashes (JSON-serializable)."""
    return describe_code(fn).structure


def describe_code(fn: Callable[..., Any]) -> CodeIdentity:
    """Walk ``fn`` and the code it uses; see the module docs."""
    checked = checked_function(fn)
    collector = _Collector(checked.__module__)
    root = collector.walk(checked)
    structure = {"root": root, "entries": collector.entries}
    return CodeIdentity(
        _structure_hash(structure), structure, frozenset(collector.packages), collector.modules
    )


def _structure_hash(structure: dict[str, Any]) -> ContentHash:
    """The hash of a code structure: SHA-256 of its canonical JSON (keys sorted, ASCII only).
    The structure holds only strings, lists and string-keyed maps, which JSON writes exactly;
    ``json`` does it in C, several times faster than ``hash_value``'s general encoding."""
    text = json.dumps(structure, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return ContentHash.of(f"{HASH_SCHEME}:code\x1d{text}".encode("ascii"))


def checked_function(fn: Callable[..., Any]) -> FunctionType:
    """``fn`` if podline can give it a code identity, else a ``FunctionIdentityError``."""
    if inspect.ismethod(fn):
        raise FunctionIdentityError(
            f"{_qualname(fn)} is a bound method: its result may depend on the instance, which "
            f"podline cannot hash; {_ADVICE}"
        )
    if not isinstance(fn, FunctionType):
        raise FunctionIdentityError(
            f"{fn!r} is not a Python function (got {type(fn).__qualname__}); {_ADVICE}"
        )
    _source(fn).function(fn)  # readable, and where its code object says
    return fn


class _Collector:
    """Walks a function and what it refers to; each function, class or module once.

    A worklist, not recursion: a chain of helpers may be longer than the recursion limit.
    A referenced object gets its key at once and its entry when the walk reaches it."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.entries: dict[str, dict[str, Any]] = {}
        self.keys: dict[int, str] = {}
        self.modules: dict[str, str] = {}
        self.packages: set[str] = set()
        self._pending: list[tuple[str, Any]] = []
        #: The module values checked against their file's text (namespace id, name).
        self._checked: set[tuple[int, str]] = set()
        # The objects seen, kept alive so that their ids are not reused during the walk.
        self._seen: list[Any] = []

    def walk(self, root: FunctionType) -> str:
        """Describe ``root`` and everything it reaches; returns the root's key."""
        key = self.entry(root)
        while self._pending:
            key_, obj = self._pending.pop()
            if isinstance(obj, FunctionType):
                self.entries[key_] = self._function(obj, root=obj is root)
            elif isinstance(obj, ModuleType):
                self.entries[key_] = self._module(obj)
            else:
                self.entries[key_] = self._class(obj)
        return key

    def entry(self, obj: FunctionType | type | ModuleType) -> str:
        """The key of ``obj``'s entry (made and queued on first sight)."""
        known = self.keys.get(id(obj))
        if known is not None:
            return known
        if isinstance(obj, FunctionType):
            # The code's qualified name: functools.wraps renames a wrapper after what it wraps.
            base, module = obj.__code__.co_qualname, obj.__module__
        elif isinstance(obj, ModuleType):
            base, module = f"<module {obj.__name__}>", obj.__name__
        else:
            base, module = obj.__qualname__, obj.__module__
        key, n = base, 1
        # Closures of one factory, or helpers of two modules, may share a qualified name.
        while key in self.modules:
            n += 1
            key = f"{base}#{n}"
        self.keys[id(obj)] = key
        self.modules[key] = module
        self._seen.append(obj)
        self._pending.append((key, obj))
        return key

    # ------------------------------------------------------------------ entries
    def _function(self, fn: FunctionType, *, root: bool) -> dict[str, Any]:
        source = _source(fn)
        node = source.function(fn)
        entry: dict[str, Any] = {
            "kind": "function",
            "code": source.digest(node, drop_decorators=root),
        }
        self._fill(entry, source, node, fn.__globals__, reader=_qualname(fn), drop_decorators=root)
        closure = self.closure(fn)
        if closure:
            entry["closure"] = closure
        return entry

    def _class(self, cls: type) -> dict[str, Any]:
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module is not None else {}
        source = _class_source(cls, namespace)
        nodes = source.class_definitions(cls)
        if not nodes:
            raise FunctionIdentityError(
                f"cannot find the definition of class {_qualname(cls)} in {source.filename} "
                "(a class statement, or an assignment to its name at module level): the file "
                "changed since it was imported, or the class is made where podline cannot see "
                "it; reload the module, or pin the identity with identity='version'"
            )
        entry: dict[str, Any] = {"kind": "class"}
        for node in nodes:
            self._fill(entry, source, node, namespace, reader=_qualname(cls))
        digests = [source.digest(node) for node in nodes]
        entry["code"] = digests[0] if len(digests) == 1 else digests
        values = _attributes_not_in_text(cls, nodes)
        if values:
            entry["values"] = values
        return entry

    def _module(self, module: ModuleType) -> dict[str, Any]:
        source = source_file(module.__file__ or "", vars(module))
        return {"kind": "module", "code": source.digest(source.tree)}

    # ------------------------------------------------------------------ references
    def _fill(
        self,
        entry: dict[str, Any],
        source: SourceFile,
        node: Definition,
        namespace: Mapping[str, Any],
        *,
        reader: str,
        drop_decorators: bool = False,
        following: frozenset[str] = frozenset(),
    ) -> None:
        """Add what the names read by ``node`` refer to, to ``entry["refs"]`` (``reader``:
        the function or class whose entry it is, for messages; ``following``: the module
        values whose statements are being followed, not followed again)."""
        refs: dict[str, Any] = entry.setdefault("refs", {})
        names = source.names(node, drop_decorators=drop_decorators)
        local = names.imports
        package = namespace.get("__package__") or ""
        for name, paths in sorted(names.uses.items()):
            if name in following or name in refs:
                continue  # being followed, or described already (one namespace: one value)
            if following and name.startswith("__") and name.endswith("__"):
                # What the import system sets (``HERE = Path(__file__).parent``): where the
                # project lives is not its code.
                continue
            if name in local:
                value = _resolve_local(local[name], package, self.packages)
                binding: ImportBinding | None = local[name]
            elif name in namespace:
                value, binding = namespace[name], source.imports.get(name)
            else:
                continue  # a local variable, a parameter or a builtin
            if value is _UNRESOLVED:
                refs[name] = {"import": local[name].text()}
                continue
            found = self.describe_name(name, value, paths, binding)
            defined = None
            if not found and binding is None and name in namespace:
                # A value of this module that is neither code nor a plain constant: followed
                # by the statements that make it, so editing them recomputes.
                defined = source.defining(name)
                if defined is not None:
                    # Its statements are followed as the file reads now: the value running
                    # must be theirs (decision 94), where the text tells it. Once a walk:
                    # every helper of a module may read the same table.
                    if (id(namespace), name) not in self._checked:
                        source.check_value(name, namespace, reader)
                        self._checked.add((id(namespace), name))
                    found = [(name, {"defined": defined})]
                elif namespace.get("__name__") == "__main__":
                    # A value a notebook made in another cell (``TABLE = {...}``, then
                    # ``TABLE["k"] = 2``): no statement of this cell names it, and the cells
                    # run in any order, so its current value counts, where it can be hashed.
                    found = _current_value(name, namespace[name])
            for ref_name, ref in found:
                refs[ref_name] = ref
            if defined is not None:
                # And by what those statements read, as if the code read it: the helpers a
                # registry holds (`MODELS = {"ridge": fit_ridge}`), the constants a table is
                # made of, so that editing them recomputes too.
                for statement in source.statements_naming(name):
                    self._fill(
                        entry,
                        source,
                        statement,
                        namespace,
                        reader=reader,
                        following=following | {name},
                    )
        if not refs:
            del entry["refs"]

    def describe_name(
        self,
        name: str,
        value: Any,
        paths: frozenset[tuple[str, ...]],
        binding: ImportBinding | None,
    ) -> list[tuple[str, Any]]:
        """The refs one global name contributes (a module may contribute one per path)."""
        if isinstance(value, ModuleType) and module_origin(value) == "project":
            found: list[tuple[str, Any]] = []
            for path in sorted(paths):
                target, used = _walk_attributes(value, path)
                ref_name = ".".join((name, *used))
                if isinstance(target, ModuleType):
                    found.append((ref_name, {"entry": self.entry(target)}))
                else:
                    ref = self.describe(target, binding=None)
                    if ref is not None:
                        found.append((ref_name, ref))
            return found
        ref = self.describe(value, binding=binding)
        return [] if ref is None else [(name, ref)]

    def describe(self, value: Any, *, binding: ImportBinding | None) -> Any:
        """What a global value contributes, or None when it is not followed."""
        target = _unwrapped(value)
        if self.follows(target):
            return {"entry": self.entry(target)}
        if _is_constant(value):
            try:
                return {"value": str(hash_value(value))}
            except HashingError:
                return None  # an unhashable global: its name still counts through the code
        self._note_package(value)
        return None if binding is None else {"import": binding.text()}

    def closure(self, fn: FunctionType) -> dict[str, Any]:
        if not fn.__closure__:
            return {}
        values: dict[str, Any] = {}
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=True):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: the variable was never assigned
                continue
            target = _unwrapped(value)
            if self.follows(target):
                values[name] = {"entry": self.entry(target)}
            elif isinstance(value, ModuleType) or callable(value):
                # Code not followed is named, so that closing over math.floor instead of
                # math.ceil counts (the closure's own code reads the same).
                self._note_package(value)
                named = _object_name(value)
                if named is not None:
                    values[name] = {"object": named}
            else:
                values[name] = {"value": str(_closure_hash(fn, name, value))}
        return values

    def follows(self, obj: Any) -> TypeGuard[FunctionType | type]:
        """Whether ``obj`` is a function or class whose code is followed: one of the root's
        module, or of the user's project."""
        if not (isinstance(obj, FunctionType) or inspect.isclass(obj)):
            return False
        return obj.__module__ == self.module or _object_origin(obj) == "project"

    def _note_package(self, value: Any) -> None:
        name = value.__name__ if isinstance(value, ModuleType) else _module_name(value)
        if name and module_origin(name.partition(".")[0]) == "installed":
            self.packages.add(name.partition(".")[0])


_UNRESOLVED = object()


def _resolve_local(binding: ImportBinding, package: str, packages: set[str]) -> Any:
    """What an import inside a function binds: imported now if it is project code (running
    the function would import it too), else ``_UNRESOLVED`` (installed and standard modules
    are not imported here)."""
    try:
        name = importlib.util.resolve_name("." * binding.level + binding.module, package)
    except (ImportError, ValueError):
        return _UNRESOLVED
    top = name.partition(".")[0]
    origin = _unimported_origin(top)
    if origin == "installed":
        packages.add(top)
    if origin != "project":
        return _UNRESOLVED
    try:
        module = importlib.import_module(name)
        if binding.attribute is None:
            return sys.modules[top] if binding.top else module
        if hasattr(module, binding.attribute):
            return getattr(module, binding.attribute)
        return importlib.import_module(f"{name}.{binding.attribute}")  # a submodule
    except ImportError:
        return _UNRESOLVED  # the function fails when it runs; nothing to follow


def _unimported_origin(top: str) -> Origin:
    """Where a top-level module comes from, without importing it."""
    if top in sys.modules:
        return module_origin(sys.modules[top])
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return "unknown"
    if spec is None:
        return "unknown"
    if spec.origin in (None, "built-in", "frozen"):
        locations = list(spec.submodule_search_locations or [])  # a namespace package
        if locations:
            return file_origin(os.path.join(locations[0], "__init__.py"))
        return "stdlib" if top in sys.stdlib_module_names else "unknown"
    return file_origin(spec.origin)


def _current_value(name: str, value: Any) -> list[tuple[str, Any]]:
    """The ref of a value by its current content; none for a value podline cannot hash. A
    numpy array (weights, a grid: common in a notebook) counts by its dtype, shape and bytes,
    which ``hash_value`` does not take (a packet's values are Arrow's)."""
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        digest = hashlib.sha256(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).data.cast("B"))
        return [(name, {"array": digest.hexdigest()})]
    try:
        return [(name, {"value": str(_value_hash(value))})]
    except HashingError:
        return []


def _walk_attributes(module: ModuleType, path: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """Follow ``path`` from a module through submodules to the first non-module value."""
    target: Any = module
    used: list[str] = []
    for attribute in path:
        if not isinstance(target, ModuleType) or not hasattr(target, attribute):
            break
        target = getattr(target, attribute)
        used.append(attribute)
    return target, tuple(used)


def _unwrapped(value: Any) -> Any:
    """A decorated helper's function (``functools.wraps``, ``functools.cache``, pods)."""
    if isinstance(value, FunctionType) or not callable(value) or inspect.isclass(value):
        return value
    try:
        return inspect.unwrap(value)
    except ValueError:  # a cycle of __wrapped__
        return value


def _object_origin(obj: Any) -> Origin:
    if isinstance(obj, FunctionType):
        return file_origin(obj.__code__.co_filename)
    return module_origin(getattr(obj, "__module__", None))


def _object_name(value: Any) -> str | None:
    """``module:qualname`` of a module, function or class; None for other objects."""
    if isinstance(value, ModuleType):
        return value.__name__
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return None


def _module_name(value: Any) -> str | None:
    name = getattr(value, "__module__", None)
    if not isinstance(name, str):
        name = type(value).__module__
    return name


_CONSTANT_TYPES = (int, float, complex, str, bytes, bool, type(None), enum.Enum, ContentHash)


def _is_constant(value: Any) -> bool:
    """Immutable plain data: what a module-level constant is."""
    if isinstance(value, tuple | frozenset):
        return all(_is_constant(item) for item in value)
    return isinstance(value, _CONSTANT_TYPES)


def _attributes_not_in_text(cls: type, nodes: list[ast.stmt]) -> dict[str, str]:
    """The hashes of ``cls``'s constant attributes whose values its text does not give.

    A module-level constant counts by its value, so ``SCALE = float(sys.argv[1])`` recomputes
    when the argument changes; a class attribute read by the same code must too:
    ``factor = float(os.environ["FACTOR"])`` in the class body, or a literal the program
    replaces as it runs (``Config.factor = args.factor``, a common way to configure from the
    command line). A class counts by its text otherwise, so an attribute the body assigns once
    from a literal, whose value is still that literal, is left out: a class's identity only
    changes where its text does not tell the value. Enum members are fixed by the text.
    Attributes the body does not assign (what a base class or a decorator adds) are not
    attributes of the class's own code."""
    if issubclass(cls, enum.Enum) or not all(isinstance(n, ast.ClassDef) for n in nodes):
        return {}
    literals: dict[str, ContentHash | None] = {}
    for node in nodes:
        assert isinstance(node, ast.ClassDef)
        for statement in node.body:
            targets: list[ast.expr]
            if isinstance(statement, ast.Assign):
                targets, value = statement.targets, statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                targets, value = [statement.target], statement.value
            else:
                continue
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                # Assigned twice (or in two branches): which one holds is not in the text.
                seen = target.id in literals
                literals[target.id] = None if seen else _literal_hash(value)
    values: dict[str, str] = {}
    own = vars(cls)
    for name in sorted(literals):
        value = own.get(name, _UNRESOLVED)
        if value is _UNRESOLVED or not _is_constant(value):
            continue
        try:
            digest = hash_value(value)
        except HashingError:
            continue
        if digest != literals[name]:
            values[name] = str(digest)
    return values


def _literal_hash(node: ast.expr) -> ContentHash | None:
    """The hash of the value a literal expression gives; None if it is not a literal."""
    try:
        return hash_value(ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError, HashingError):
        return None


def _value_hash(value: Any) -> ContentHash:
    """The hash of a value code reads (a closure variable, a notebook's value): what
    ``hash_value`` gives, but where the value holds a dict or a datetime with a zone, of a
    form that keeps what ``hash_value`` folds and the code can tell apart: a dict's order
    (``next(iter(table))``) and a datetime's zone (``Europe/Paris`` and a fixed ``+01:00``
    print alike in January and differ in July). Other values hash as ``hash_value`` hashes
    them, so their identities are as before (decision 98)."""
    kept, changed = _distinguished(value)
    return hash_value(kept if changed else value)


#: Marks the forms ``_distinguished`` makes, so that they are no plain tuple's.
_DICT, _ZONED = "\x00podline:ordered-dict", "\x00podline:zoned-datetime"


def _distinguished(value: Any) -> tuple[Any, bool]:
    """``value`` with its dicts as their items in order and its zoned datetimes with their
    zone's kind and name, and whether anything changed."""
    if isinstance(value, dict):
        items = [(_distinguished(k)[0], _distinguished(v)[0]) for k, v in value.items()]
        return (_DICT, tuple(items)), True
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        zone = value.tzinfo
        return (_ZONED, value.isoformat(), f"{_object_name(type(zone))}:{zone}"), True
    if isinstance(value, list | tuple):
        parts = [_distinguished(item) for item in value]
        if any(changed for _, changed in parts):
            kept = [part for part, _ in parts]
            return (kept if isinstance(value, list) else tuple(kept)), True
    return value, False


def _closure_hash(fn: FunctionType, name: str, value: Any) -> ContentHash:
    try:
        return _value_hash(value)
    except HashingError as exc:
        raise FunctionIdentityError(
            f"{_qualname(fn)} closes over {name!r}, a {type(value).__qualname__} that cannot "
            f"be hashed ({exc}); pass it as an argument, make it a module-level constant, or "
            "use identity='version'"
        ) from None


def _qualname(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _source(fn: FunctionType) -> SourceFile:
    try:
        return source_file(fn.__code__.co_filename, fn.__globals__)
    except FunctionIdentityError as exc:
        # Which function: the file name alone ('<timed exec>') does not say.
        raise FunctionIdentityError(f"{_qualname(fn)}: {exc}") from None


def _class_source(cls: type, namespace: Mapping[str, Any]) -> SourceFile:
    """The source file defining ``cls``: its module's file, or else (a class defined in a
    notebook cell: the notebook's ``__main__`` has no file) the file of a method it defines."""
    try:
        filename: str | None = inspect.getsourcefile(cls)
    except (OSError, TypeError):  # no file for its module (a notebook), or a built-in class
        filename = None
    candidates = [filename] if filename else []
    candidates += [f for f in _method_files(cls) if f not in candidates]
    first: SourceFile | None = None
    for candidate in candidates:
        try:
            source = source_file(candidate, dict(namespace))
        except FunctionIdentityError:
            continue
        if source.class_definitions(cls):
            return source
        first = first or source
    if first is not None:
        return first  # the caller says that the class is not in it
    where = (
        " (a class defined in a notebook cell is found through the methods it defines; this "
        "one defines none)"
        if cls.__module__ == "__main__"
        else ""
    )
    raise FunctionIdentityError(
        f"cannot read the source of class {_qualname(cls)}{where}; define it in a module "
        "beside the notebook or script, or pin the identity with identity='version'"
    )


def _method_files(cls: type) -> list[str]:
    """The files of the functions defined in the body of ``cls`` (not those a decorator
    such as ``dataclass`` made, whose code has no file)."""
    files: list[str] = []
    for member in vars(cls).values():
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__  # noqa: PLW2901
        elif isinstance(member, property):
            member = member.fget  # noqa: PLW2901
        if not (
            isinstance(member, FunctionType)
            # The code's own name: a wrapper copies the name of what it wraps, not its code.
            and member.__code__.co_qualname.startswith(f"{cls.__qualname__}.")
        ):
            continue
        filename = member.__code__.co_filename
        # Code a decorator compiled from a string ("<string>") has no lines to read.
        if filename not in files and linecache.getlines(filename):
            files.append(filename)
    return files
