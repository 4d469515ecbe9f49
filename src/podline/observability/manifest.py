"""The run manifest and code records: what a run ran on, and the code its functions had.

**Manifest.** Every run record (``pipelines/<name>/runs``, one row per node) carries the
columns of ``MANIFEST_SCHEMA``, shown by ``pipeline.runs()``:

* ``podline_version`` and ``hash_scheme``;
* ``python_version``, ``python_implementation`` (``CPython``, ``PyPy``) and ``platform``;
* ``packages``: ``name==version`` of the installed distributions the pipeline's functions use
  (found by code identity, ``podline.functions.code_identity``) or name in ``depends_on=``;
* ``git_commit`` and ``git_dirty``: the commit checked out in the working directory's git
  repository and whether tracked files differ from it (untracked files do not count); null
  outside a repository, or when git is missing or does not answer within 10 s.

It costs a metadata lookup per package, the platform string and one ``git status``, all
found in the background while the run computes (``ManifestProbe``); nothing per packet.

**Code records.** ``record_code`` keeps, at the result store's ``code`` path (shared by the
pipelines whose results go there, as the memoized results are), one row per function identity: the
function's name, identity, code hash and code structure (JSON; see ``describe_code``), with
the module of each entry and the ``depends_on`` versions. A pipeline writes it for the
functions that computed in a run (a fully cached run writes and reads nothing). A later
process can compare a stored structure with the current one to name what changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import pyarrow as pa

from podline.functions import PacketFunction
from podline.functions.project import package_versions
from podline.hashing import HASH_SCHEME
from podline.runtime import thread_pool
from podline.stores import RECORD_ID, Store
from podline.version import __version__

__all__ = [
    "CODE_PATH",
    "MANIFEST_SCHEMA",
    "GitProbe",
    "ManifestProbe",
    "RunManifest",
    "git_state",
    "record_code",
    "run_manifest",
]

#: Where ``record_code`` keeps code structures in a store.
CODE_PATH = "code"

MANIFEST_SCHEMA = pa.schema(
    [
        ("podline_version", pa.large_string()),
        ("hash_scheme", pa.large_string()),
        ("python_version", pa.large_string()),
        ("python_implementation", pa.large_string()),
        ("platform", pa.large_string()),
        ("packages", pa.large_list(pa.large_string())),
        ("git_commit", pa.large_string()),
        ("git_dirty", pa.bool_()),
    ]
)

_GIT_SECONDS = 10.0


@dataclass(frozen=True)
class RunManifest:
    """What one run ran on (see the module docs)."""

    podline_version: str
    hash_scheme: str
    python_version: str
    python_implementation: str
    platform: str
    packages: tuple[str, ...]
    git_commit: str | None
    git_dirty: bool | None

    def append_to(self, table: pa.Table) -> pa.Table:
        """``table`` (run record rows) with the manifest's columns added to every row."""
        values = asdict(self)
        for field in MANIFEST_SCHEMA:
            value = values[field.name]
            column = pa.array([value] * table.num_rows, field.type)
            table = table.append_column(field, column)
        return table


def run_manifest(
    functions: Iterable[PacketFunction], git: tuple[str | None, bool | None]
) -> RunManifest:
    """The manifest of a run of these functions, with the (commit, dirty) ``GitProbe`` found."""
    return _manifest(_packages(functions), git)


def _packages(functions: Iterable[PacketFunction]) -> tuple[str, ...]:
    """``name==version`` of the distributions the functions use or depend on, sorted (also
    finds the interpreter's details, which the manifest needs next)."""
    used: set[str] = set()
    versions: dict[str, str] = {}
    for function in functions:
        if function.code is not None:
            used |= function.code.packages
        versions.update(function.dependencies)
    versions.update(package_versions(used))
    _interpreter()
    return tuple(f"{name}=={version}" for name, version in sorted(versions.items()))


def _manifest(packages: tuple[str, ...], git: tuple[str | None, bool | None]) -> RunManifest:
    return RunManifest(
        podline_version=__version__,
        hash_scheme=HASH_SCHEME,
        packages=packages,
        git_commit=git[0],
        git_dirty=git[1],
        **_interpreter(),
    )


class ManifestProbe:
    """``run_manifest`` of ``functions``, found in a thread while a run computes: it starts
    ``git status`` (``GitProbe``), reads the versions of the packages the functions use
    (installed metadata, a few ms a package) and the platform string (``platform.platform()``
    runs ``uname -p``, once a process), then waits for git; so the run's own thread neither
    starts a process nor reads metadata, and waits only for what is not found by its end."""

    def __init__(self, functions: Iterable[PacketFunction], cwd: str | None = None) -> None:
        self._functions = list(functions)
        self._cwd = cwd
        self._found: Future[RunManifest] | None = None
        # No new threads once the interpreter exits: then found in ``result()``.
        with contextlib.suppress(RuntimeError):
            self._found = thread_pool("podline-manifest", 1).submit(self._probe)

    def _probe(self) -> RunManifest:
        git = GitProbe(self._cwd)
        packages = _packages(self._functions)
        return _manifest(packages, git.result())

    def result(self) -> RunManifest:
        """The manifest (waits for what is still being found)."""
        return self._probe() if self._found is None else self._found.result()


@cache
def _interpreter() -> dict[str, str]:
    # platform.platform() runs ``uname -p`` (and may read the interpreter binary for the C
    # library): once a process.
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


class GitProbe:
    """``git status`` of the repository at ``cwd`` (default: the working directory), started at
    once in the background (a run starts it and reads it when it ends, so it costs the run no
    time), given up after 10 s."""

    def __init__(self, cwd: str | None = None) -> None:
        self._deadline = time.monotonic() + _GIT_SECONDS
        try:
            self._process: subprocess.Popen[str] | None = subprocess.Popen(
                ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
                cwd=cwd or os.getcwd(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                # Reading must not take the index lock a concurrent git command may hold.
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )
        except OSError:  # no git, or the directory is gone
            self._process = None

    def result(self) -> tuple[str | None, bool | None]:
        """(commit, whether tracked files differ from it); (None, None) outside a repository
        or when git is missing, fails or does not answer in time."""
        process = self._process
        if process is None:
            return None, None
        try:
            out, _ = process.communicate(timeout=max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None, None
        if process.returncode != 0:
            return None, None
        commit: str | None = None
        dirty = False
        for line in out.splitlines():
            if line.startswith("# branch.oid "):
                oid = line.removeprefix("# branch.oid ").strip()
                commit = None if oid == "(initial)" else oid
            elif line and not line.startswith("#"):
                dirty = True
        return commit, dirty


def git_state(cwd: str) -> tuple[str | None, bool | None]:
    """``GitProbe(cwd).result()``: the commit of ``cwd``'s repository and whether it is dirty."""
    return GitProbe(cwd).result()


def record_code(store: Store, functions: Mapping[str, PacketFunction]) -> None:
    """Keep the code structure of each function (by identity, written once) at ``CODE_PATH``
    of ``store`` (a pipeline's whole result store)."""
    rows: list[dict[str, Any]] = []
    for function in functions.values():
        code = function.code
        rows.append(
            {
                RECORD_ID: str(function.content_hash()),
                "function": function.name,
                "code_hash": None if code is None else str(code.hash),
                "structure": None if code is None else json.dumps(code.structure, sort_keys=True),
                "modules": None if code is None else json.dumps(code.modules, sort_keys=True),
                "depends_on": json.dumps(function.dependencies, sort_keys=True),
            }
        )
    if rows:
        schema = pa.schema(
            [(RECORD_ID, pa.large_string())]
            + [(name, pa.large_string()) for name in rows[0] if name != RECORD_ID]
        )
        store.write(CODE_PATH, pa.Table.from_pylist(rows, schema=schema))
