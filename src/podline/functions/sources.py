"""The source of functions and classes: each file parsed once, definitions found by position.

Code identity needs the syntax tree of every function it follows. Reading each one with
``inspect.getsource`` re-reads (and, for classes, re-parses) its whole file every time; a
pipeline of 20 pods using a 5,000-line module would parse it hundreds of times. Here a file
is parsed once per content (``SourceFile``, cached by file name and checked against the text
``linecache`` holds), and a definition is found in it by position:

* a function by its code's name and first line (``co_name``, ``co_firstlineno``: the line of
  its first decorator, or of ``def``);
* a lambda by its first line and parameter names (two alike on one line are ambiguous);
* a class by its qualified name (and, on Python 3.13+, its first line).

A definition that is not where its code object says (the file was edited after it was
imported) is a ``FunctionIdentityError``: the identity would describe code that is not the
code that runs. So is a function of a module imported from its source file whose definition
is where it was but reads differently (a body edited in place after the import, by the user
or by a ``git pull`` in a shared working copy): the file's current text is compiled once and
the function's code object compared with the one it gives. A module-level value followed by
its statement (a list, a dict) is compared the same way with what the text now makes it,
where the text tells it (``check_value``, ``podline.functions.module_values``). Modules loaded
otherwise (a notebook's cells, pytest's assertion rewriting) are not compared. The per-node
facts code identity asks for (canonical digest, names read, imports) are cached with the file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import linecache
import reprlib
import symtable
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any

from podline.errors import FunctionIdentityError
from podline.functions.canonical import canonical_text
from podline.functions.module_values import same_value, written_value

__all__ = ["Definition", "ImportBinding", "Names", "SourceFile", "source_file"]

#: What code identity describes: a definition, a module, or a statement that makes a class.
Definition = (
    ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda | ast.Module | ast.stmt
)


@dataclass(frozen=True)
class ImportBinding:
    """A name bound by an import statement: ``import a.b`` binds ``a`` (module ``a.b``,
    ``top``); ``import a.b as x`` binds ``x`` (module ``a.b``); ``from .m import n as k`` binds
    ``k`` (module ``m`` at level 1, attribute ``n``)."""

    module: str
    attribute: str | None = None
    level: int = 0
    #: Whether the name is bound to the top-level package of ``module`` (``import a.b``).
    top: bool = False

    def text(self) -> str:
        """``"a.b"`` or ``"..m:n"``: what the identity records for a name not followed."""
        base = "." * self.level + self.module
        return base if self.attribute is None else f"{base}:{self.attribute}"


@dataclass(frozen=True)
class Names:
    """What a piece of code reads and imports."""

    #: name -> the attribute paths read from it (``()`` for a use of the bare name).
    uses: dict[str, frozenset[tuple[str, ...]]]
    #: Names bound by import statements inside the code (a function's own imports).
    imports: dict[str, ImportBinding]


@dataclass(eq=False)
class SourceFile:
    """One parsed version of a source file, with an index of its definitions."""

    filename: str
    text: str
    tree: ast.Module
    functions: dict[tuple[str, int], list[ast.FunctionDef | ast.AsyncFunctionDef]]
    lambdas: dict[int, list[ast.Lambda]]
    classes: dict[str, list[ast.ClassDef]]
    #: Names bound by the file's module-level import statements.
    imports: dict[str, ImportBinding]
    #: The module-level assignment statements to each name.
    assignments: dict[str, list[ast.stmt]]
    #: The ``linecache`` lines this version was parsed from (the same list while unchanged).
    lines: list[str] = field(default_factory=list)
    _facts: dict[tuple[int, str], Any] = field(default_factory=dict)
    #: The code objects this text compiles to (as an import compiles it), by name and first
    #: line (``_runs_as_written``), once needed; None: the text does not compile.
    _compiled: dict[tuple[str, int], list[CodeType]] | None = None

    # ------------------------------------------------------------------ finding definitions
    def function(self, fn: FunctionType) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda:
        """The definition of ``fn`` in this file."""
        # By the code object's own name: functools.wraps gives a wrapper the wrapped name.
        code = fn.__code__
        line = code.co_firstlineno
        if code.co_name == "<lambda>":
            params = _parameter_names(fn)
            found: list[Any] = [
                node for node in self.lambdas.get(line, []) if _lambda_params(node) == params
            ]
            if len(found) > 1:
                raise FunctionIdentityError(
                    f"cannot tell the lambda {_qualname(fn)} apart from {len(found) - 1} "
                    f"other(s) like it on line {line} of {self.filename}; give it a name "
                    "with def, or use identity='version'"
                )
        else:
            found = self.functions.get((code.co_name, line), [])
        if len(found) != 1:
            raise FunctionIdentityError(
                f"cannot find the definition of {_qualname(fn)} at line {line} of "
                f"{self.filename}: the file changed since it was imported; reload the module "
                "or restart the interpreter"
            )
        if not self._runs_as_written(fn):
            raise FunctionIdentityError(
                f"the definition of {_qualname(fn)} in {self.filename} changed since the "
                "module was imported: the code that runs is the one imported, and an identity "
                "of the new text would store its results as the new code's; reload the module "
                "or restart the interpreter"
            )
        return found[0]

    def _runs_as_written(self, fn: FunctionType) -> bool:
        """Whether ``fn``'s code is what this text of its file compiles to (True where that
        cannot be told: a module not imported from its source file as Python does it)."""
        loader = fn.__globals__.get("__loader__")
        if type(loader) is not importlib.machinery.SourceFileLoader:
            return True
        if self._compiled is None:
            self._compiled = _code_objects(self.text, self.filename)
        code = fn.__code__
        candidates = self._compiled.get((code.co_name, code.co_firstlineno))
        if candidates is None:
            return not self._compiled  # (a text that does not compile: the parse reports it)
        return any(candidate == code for candidate in candidates)

    def check_value(self, name: str, namespace: Mapping[str, Any], reader: str) -> None:
        """Refuse the module-level value ``name`` of the module imported from this file
        (``namespace``, its globals) if this text now makes it another value than the one
        the module holds (``podline.functions.module_values``): ``reader``, which reads it,
        would run with the value imported under an identity of the new text. Values the text
        does not tell exactly, and modules not imported from their file by Python's own
        loader, are not checked."""
        loader = namespace.get("__loader__")
        if type(loader) is not importlib.machinery.SourceFileLoader:
            return
        if namespace.get("__file__") != self.filename or name not in namespace:
            return
        written = self._fact(
            self.tree, f"written {name}", lambda: written_value(self.tree, self.text, name)
        )
        if written is None or same_value(written[1], namespace[name]):
            return
        statement, value = written
        raise FunctionIdentityError(
            f"{reader} reads {name!r}, which {self.filename} now makes {reprlib.repr(value)} "
            f"(line {statement.lineno}) while the running module holds "
            f"{reprlib.repr(namespace[name])}: the file changed since the module was imported "
            f"(or {name!r} was changed from outside the module). The code runs with the value "
            "the module holds, and an identity of the file's text would store its results as "
            "the new value's; reload the module (importlib.reload) or restart the interpreter "
            "(a value changed on purpose belongs in the function's inputs, or pin "
            "identity='version')"
        )

    def class_definitions(self, cls: type) -> list[ast.stmt]:
        """Every definition of ``cls`` in this file: its ``class`` statements (several when
        it is defined in branches, e.g. ``if``/``else``: all of them then count), or else the
        module-level assignments to its name, for a class made by a call (``namedtuple``,
        ``Enum("Color", ...)``, ``make_dataclass``)."""
        found = self.classes.get(cls.__qualname__, [])
        line = getattr(cls, "__firstlineno__", None)  # Python 3.13+
        if line is not None:
            found = [c for c in found if _first_line(c) == line] or found
        if found or "." in cls.__qualname__:
            return list(found)
        return list(self.assignments.get(cls.__name__, []))

    # ------------------------------------------------------------------ facts about nodes
    def digest(self, node: Definition, *, drop_decorators: bool = False) -> str:
        """SHA-256 (hex) of the canonical text of ``node``."""
        return self._fact(
            node,
            f"digest{drop_decorators}",
            lambda: hashlib.sha256(
                canonical_text(node, drop_decorators=drop_decorators).encode(
                    "utf-8", "surrogatepass"
                )
            ).hexdigest(),
        )

    def defining(self, name: str) -> str | None:
        """SHA-256 (hex) of the canonical text of the module-level statements that name
        ``name`` (assignments to it or into it, calls on it, ``del``; not definitions or
        imports), in file order; None if there are none. How a module-level value of a type
        podline does not hash (a date, a compiled pattern, a list inside a tuple, a dict
        filled at import) is followed: by the source that makes it."""
        statements = self._fact(self.tree, "naming", self._statements_naming).get(name)
        if not statements:
            return None
        text = "\n".join(canonical_text(statement) for statement in statements)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def statements_naming(self, name: str) -> list[ast.stmt]:
        """The module-level statements ``defining`` hashes for ``name``, in file order."""
        return list(self._fact(self.tree, "naming", self._statements_naming).get(name, ()))

    def _statements_naming(self) -> dict[str, list[ast.stmt]]:
        """The simple module-level statements by every name they mention, in file order
        (read once per file: a module may have many values and many functions reading them)."""
        found: dict[str, list[ast.stmt]] = {}
        for statement in _module_level(self.tree.body):
            if isinstance(statement, _SIMPLE_STATEMENTS):
                named = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
                for name in named:
                    found.setdefault(name, []).append(statement)
        return found

    def names(self, node: Definition, *, drop_decorators: bool = False) -> Names:
        """The global-looking names ``node`` reads and its own imports (``drop_decorators``:
        not counting what the decorators of ``node`` itself read)."""
        return self._fact(node, f"names{drop_decorators}", lambda: _names(node, drop_decorators))

    def _fact(self, node: ast.AST, kind: str, compute: Any) -> Any:
        key = (id(node), kind)
        if key not in self._facts:
            self._facts[key] = compute()
        return self._facts[key]


_FILES: dict[str, SourceFile] = {}
_LOCK = threading.Lock()


def _code_objects(text: str, filename: str) -> dict[tuple[str, int], list[CodeType]]:
    """Every code object ``text`` compiles to, by name and first line; empty if it does not
    compile. Indexed once per text: a module of hundreds of functions is asked about each."""
    try:
        stack = [compile(text, filename, "exec", dont_inherit=True)]
    except (SyntaxError, ValueError):
        return {}
    found: dict[tuple[str, int], list[CodeType]] = {}
    while stack:
        code = stack.pop()
        found.setdefault((code.co_name, code.co_firstlineno), []).append(code)
        stack.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return found


def source_file(filename: str, module_globals: dict[str, Any] | None) -> SourceFile:
    """The parsed current text of ``filename`` (as ``inspect`` would read it)."""
    linecache.checkcache(filename)  # drops the file's lines if it changed on disk
    lines = linecache.getlines(filename, module_globals)
    with _LOCK:
        cached = _FILES.get(filename)
    if cached is not None and cached.lines is lines:  # the very lines parsed before
        return cached
    text = "".join(lines)
    if not text:
        raise FunctionIdentityError(
            f"cannot read the source file {filename!r}; {_advice(filename)}"
        )
    if cached is not None and cached.text == text:
        cached.lines = lines
        return cached
    parsed = _parse(filename, text)
    parsed.lines = lines
    with _LOCK:
        _FILES[filename] = parsed
    return parsed


#: The file names IPython's cell magics compile a cell's code under, keeping no source.
_CELL_MAGICS = {"<timed exec>": "%%time", "<magic-timeit>": "%%timeit"}


def _advice(filename: str) -> str:
    """What to do about code whose source cannot be read."""
    magic = _CELL_MAGICS.get(filename)
    if magic is not None:
        return (
            f"it was defined in a notebook cell run under {magic}, which compiles the cell "
            "without keeping its source: define the function in a cell of its own (time the "
            "cell that runs the pipeline instead), or pin the identity with identity='version'"
        )
    return (
        "define the function in a file or a notebook cell (code typed at a bare interpreter "
        "prompt, or compiled from a string, has no source), or pin the identity with "
        "identity='version'"
    )


def _parse(filename: str, text: str) -> SourceFile:
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as exc:
        raise FunctionIdentityError(
            f"cannot parse {filename} ({exc.msg}, line {exc.lineno}): it changed since it "
            "was imported; fix it and reload the module"
        ) from None
    functions: dict[tuple[str, int], list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    lambdas: dict[int, list[ast.Lambda]] = {}
    classes: dict[str, list[ast.ClassDef]] = {}
    for qualname, node in _scoped(tree.body, ""):
        if isinstance(node, ast.ClassDef):
            classes.setdefault(qualname, []).append(node)
        elif isinstance(node, ast.Lambda):
            lambdas.setdefault(node.lineno, []).append(node)
        else:
            functions.setdefault((node.name, _first_line(node)), []).append(node)
    statements = list(_module_level(tree.body))
    imports = dict(_import_bindings(iter(statements)))
    assignments: dict[str, list[ast.stmt]] = {}
    for statement in statements:
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    assignments.setdefault(target.id, []).append(statement)
    return SourceFile(filename, text, tree, functions, lambdas, classes, imports, assignments)


def _scoped(nodes: Sequence[ast.AST], prefix: str) -> Iterator[tuple[str, Any]]:
    """Every function, class and lambda below ``nodes``, with its qualified name."""
    stack = [(node, prefix) for node in reversed(nodes)]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            qualname = f"{scope}{node.name}"
            yield qualname, node
            inner = (
                f"{qualname}.<locals>." if not isinstance(node, ast.ClassDef) else f"{qualname}."
            )
            # Decorators, defaults and bases are evaluated in the enclosing scope.
            outer = [n for n in ast.iter_child_nodes(node) if n not in node.body]
            stack.extend((child, scope) for child in reversed(outer))
            stack.extend((child, inner) for child in reversed(node.body))
            continue
        if isinstance(node, ast.Lambda):
            yield f"{scope}<lambda>", node
        stack.extend((child, scope) for child in reversed(list(ast.iter_child_nodes(node))))


#: Statements that run as they are, not blocks of others: where a module-level value is made.
_SIMPLE_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr, ast.Delete)


def _module_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Statements run at import time: the body and blocks inside it, not definitions."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(
                child
                for child in reversed(list(ast.iter_child_nodes(node)))
                if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case)
            )


def _import_bindings(nodes: Iterator[ast.AST]) -> Iterator[tuple[str, ImportBinding]]:
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield alias.asname, ImportBinding(alias.name)
                else:
                    yield alias.name.partition(".")[0], ImportBinding(alias.name, top=True)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    binding = ImportBinding(node.module or "", alias.name, node.level)
                    yield alias.asname or alias.name, binding


def _names(node: ast.AST, drop_decorators: bool) -> Names:
    """One walk over ``node``: the names it reads with their attribute paths, and the names
    its import statements bind (none for a module: its imports are ``SourceFile.imports``)."""
    decorators = getattr(node, "decorator_list", []) if drop_decorators else []
    skipped = {id(n) for d in decorators for n in ast.walk(d)}
    nodes = [n for n in ast.walk(node) if id(n) not in skipped]
    inner: set[int] = set()  # attribute nodes that are part of a longer chain
    imports: list[ast.AST] = []
    for sub in nodes:
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute):
            inner.add(id(sub.value))
        elif isinstance(sub, ast.Import | ast.ImportFrom) and not isinstance(node, ast.Module):
            imports.append(sub)
    uses: dict[str, set[tuple[str, ...]]] = {}
    in_chain: set[int] = set()  # names read as the start of a chain
    for sub in nodes:
        if not isinstance(sub, ast.Attribute) or id(sub) in inner:
            continue
        path: list[str] = []
        current: ast.expr = sub
        while isinstance(current, ast.Attribute):
            path.append(current.attr)
            current = current.value
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Load):
            uses.setdefault(current.id, set()).add(tuple(reversed(path)))
            in_chain.add(id(current))
    for sub in nodes:
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and id(sub) not in in_chain:
            uses.setdefault(sub.id, set()).add(())
    bindings = dict(_import_bindings(iter(imports)))
    if not isinstance(node, ast.Module):
        # A parameter or local variable named like a module-level name is not a reference
        # to it: keep only the names Python itself would look up among the globals, and
        # those the definition's own imports bind.
        looked_up = _global_names(node) | bindings.keys()
        uses = {name: paths for name, paths in uses.items() if name in looked_up}
    return Names({name: frozenset(paths) for name, paths in uses.items()}, bindings)


def _global_names(node: ast.AST) -> set[str]:
    """The names that ``node`` (a definition or lambda, with every scope nested in it) reads
    from its module's globals, as Python's own symbol table of its code sees them: not its
    parameters, locals, or the enclosing function's variables its inner functions use."""
    found: set[str] = set()
    tables = [symtable.symtable(ast.unparse(node), "<podline>", "exec")]
    while tables:
        table = tables.pop()
        found.update(
            s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()
        )
        tables.extend(table.get_children())
    return found


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _lambda_params(node: ast.Lambda) -> list[str]:
    return [a.arg for a in node.args.posonlyargs + node.args.args]


def _parameter_names(fn: FunctionType) -> list[str]:
    code = fn.__code__
    return list(code.co_varnames[: code.co_argcount])


def _qualname(fn: FunctionType) -> str:
    return f"{fn.__module__}.{fn.__code__.co_qualname}"
