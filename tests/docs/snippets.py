"""The documentation's code blocks as programs: finding them in a Markdown page, running them.

Every ```python block of README.md and docs/**/*.md runs, in page order, all blocks of one
page in one namespace (as a user pastes them into one script), in a fresh working directory
with ``PODLINE_STORE`` naming a store inside it. The line ``<!-- podline: no-run -->`` right
before a block (blank lines between are allowed) skips that block; ``<!-- podline: file
PATH -->`` there writes the block (of any language) to ``PATH`` in the working directory, in
page order, instead of running it (a module later blocks import, a CSV file they read);
``<!-- podline: slow -->`` anywhere in a page marks the page's test ``slow``. ```bash,
```console, ```text and other blocks are not run, but a block in a Python dialect the runner
would silently skip (```py, ```pycon, ...) is an error unless a marker precedes it.

The runner compiles each block under the page's own path with the block's Markdown line
numbers, and shows ``linecache`` (and so tracebacks and podline's code identity, which parses
a function's file) a Python view of the page: its runnable blocks at their lines, blank lines
elsewhere. A failure then reads ``docs/page.md, line 42``, pointing at the Markdown source.
"""

from __future__ import annotations

import builtins
import linecache
import re
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "NO_RUN",
    "SLOW",
    "Block",
    "Page",
    "SnippetError",
    "forget_modules_under",
    "parse_page",
    "run_page",
]

NO_RUN = "<!-- podline: no-run -->"
#: Before a block: write the block to this file (relative to the page's working directory)
#: instead of running it, e.g. a module that later blocks import, or a CSV they read.
FILE = "<!-- podline: file PATH -->"
SLOW = "<!-- podline: slow -->"
#: Fence languages that mean Python but that the runner does not run.
PYTHON_ALIASES = frozenset({"py", "py3", "python3", "pycon", "ipython", "ipython3"})

_MARKER = re.compile(r"^<!-- podline: (?:no-run|file (?P<file>\S+)) -->$")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


class SnippetError(Exception):
    """A page whose code blocks cannot be collected or did not run; the message names the
    page and the Markdown line."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, first code line (1-based) and dedented text."""

    language: str
    line: int
    code: str
    no_run: bool
    #: The file the block is written to (a ``file`` marker), or None.
    file: str | None = None

    @property
    def runs(self) -> bool:
        return self.language == "python" and not self.no_run and self.file is None


@dataclass(frozen=True)
class Page:
    """A Markdown page's code blocks; ``name`` is how failures name it (a relative path)."""

    path: Path
    name: str
    blocks: tuple[Block, ...]
    slow: bool

    @property
    def runnable(self) -> list[Block]:
        return [block for block in self.blocks if block.runs]

    def python_view(self) -> str:
        """The page as a Python file: runnable blocks at their Markdown lines, blanks elsewhere."""
        lines = [""] * len(self.path.read_text(encoding="utf-8").splitlines())
        for block in self.runnable:
            code_lines = block.code.splitlines()
            lines[block.line - 1 : block.line - 1 + len(code_lines)] = code_lines
        return "\n".join(lines) + "\n"


def parse_page(path: Path, name: str) -> Page:
    """The code blocks of the Markdown page at ``path``; a marker that skips nothing, a
    Python block in a dialect that would not run, or an unclosed fence is a ``SnippetError``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return Page(
        path=path,
        name=name,
        blocks=tuple(_blocks(lines, name)),
        slow=any(line.strip() == SLOW for line in lines),
    )


@dataclass(frozen=True)
class _Marker:
    line: int
    text: str
    file: str | None  # a file marker's path; None for no-run


def _blocks(lines: list[str], name: str) -> Iterator[Block]:
    marker: _Marker | None = None  # a marker awaiting its block
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        opening = _FENCE.match(line)
        found = _MARKER.match(line.strip())
        if found:
            marker = _Marker(number, line.strip(), found["file"])
        elif opening and "`" not in opening["info"]:
            end = _closing(lines, number, opening["fence"], name)
            yield _block(lines[number:end], number, opening, marker, name)
            marker = None
            number = end + 1
        elif line.strip() and marker is not None:
            raise SnippetError(
                f"{name}, line {marker.line}: {marker.text} must be right before a code block "
                "(blank lines may sit between)"
            )
    if marker is not None:
        raise SnippetError(f"{name}, line {marker.line}: {marker.text} is not followed by a block")


def _block(
    body: list[str], fence: int, opening: re.Match[str], marker: _Marker | None, name: str
) -> Block:
    indent = len(opening["indent"])
    code = textwrap.dedent(
        "\n".join(text[indent:] if text[:indent].isspace() else text for text in body)
    )
    language = opening["info"].split(maxsplit=1)[0].lower() if opening["info"] else ""
    if marker is None:
        if language in PYTHON_ALIASES:
            raise SnippetError(
                f"{name}, line {fence}: a ```{language} block is not run as a test; write "
                f"```python, or put {NO_RUN} on the line before it"
            )
        return Block(language, fence + 1, code, no_run=False)
    if marker.file is None and language != "python":
        raise SnippetError(
            f"{name}, line {marker.line}: {NO_RUN} precedes a ```{language or '(plain)'} "
            "block, which never runs; remove the marker"
        )
    if marker.file is not None and (
        Path(marker.file).is_absolute() or ".." in Path(marker.file).parts
    ):
        raise SnippetError(
            f"{name}, line {marker.line}: the file {marker.file!r} must be a relative path "
            "inside the page's working directory"
        )
    return Block(language, fence + 1, code, no_run=marker.file is None, file=marker.file)


def _closing(lines: list[str], start: int, fence: str, name: str) -> int:
    """The index of the line closing the fence opened on line ``start`` (1-based)."""
    for index in range(start, len(lines)):
        text = lines[index].strip()
        if text and set(text) == {fence[0]} and len(text) >= len(fence):
            return index
    raise SnippetError(f"{name}, line {start}: the code block opened here is never closed")


def run_page(page: Page, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the page's runnable blocks in order in one namespace (a fresh ``__main__`` unless
    given) and return it; the first block that raises is a ``SnippetError`` naming the page,
    the block's line and the failing line, with the traceback from the block down."""
    filename = str(page.path)
    view = page.python_view()
    # An entry with no modification time: linecache.checkcache keeps it (as IPython does for
    # its cells), so code identity and tracebacks read the blocks, not the Markdown around them.
    linecache.cache[filename] = (len(view), None, view.splitlines(keepends=True), filename)
    if namespace is None:
        namespace = {}
    namespace.setdefault("__name__", "__main__")
    namespace.setdefault("__builtins__", builtins)
    try:
        for block in page.blocks:
            if block.file is not None:
                Path(block.file).parent.mkdir(parents=True, exist_ok=True)
                Path(block.file).write_text(block.code + "\n", encoding="utf-8")
            elif block.runs:
                _run_block(page, block, filename, namespace)
    finally:
        linecache.cache.pop(filename, None)
    return namespace


def _run_block(page: Page, block: Block, filename: str, namespace: dict[str, Any]) -> None:
    source = "\n" * (block.line - 1) + block.code
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise SnippetError(
            f"{page.name}, line {exc.lineno}: the block at line {block.line} is not valid "
            f"Python: {exc.msg}"
        ) from None
    try:
        exec(code, namespace)
    except Exception as exc:
        raise SnippetError(_failure(page, block, filename, exc)) from exc


def _failure(page: Page, block: Block, filename: str, exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next  # drop the runner's own frames
    line = block.line
    for frame, number in traceback.walk_tb(tb):
        if frame.f_code.co_filename == filename:
            line = number  # the deepest line of the page on the way down
    shown = "".join(traceback.format_exception(type(exc), exc, tb))
    return (
        f"{page.name}, line {line} (in the block at line {block.line}) raised "
        f"{type(exc).__name__}: {exc}\n\n{shown}"
    )


def forget_modules_under(directory: Path) -> None:
    """Drop from ``sys.modules`` what a page imported from its working directory (modules, and
    packages, namespace packages included, whose path lies there), so the next page or test
    that imports a module of the same name imports its own."""
    root = directory.resolve()

    def under(location: str | None) -> bool:
        return bool(location) and Path(location).resolve().is_relative_to(root)  # type: ignore[arg-type]

    for module_name, module in list(sys.modules.items()):
        locations = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or [])]
        if any(under(location) for location in locations):
            del sys.modules[module_name]
