"""Shared test configuration: hypothesis profiles ("ci" when the CI variable is set) and the
``store`` fixture, which runs a test once per store backend, ``s3_server`` and ``s3_store`` (a
local S3-compatible server, see ``tests/services.py``), ``pg_server`` and ``pg_store`` (a
throwaway PostgreSQL cluster), ``eventually``, which polls for what background threads do, and
``ctrl_c_in_a_notebook``, which presses Ctrl-C while a notebook cell runs; ``user_project`` and
``installed_packages``, directories of modules on ``sys.path`` that tests edit and re-import as
a fresh process would.

To run every store-backed test against a new backend, add one entry to ``BACKENDS``: a
function of a scratch directory returning a fresh, empty store.
"""

from __future__ import annotations

import _thread
import asyncio
import importlib
import os
import signal
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings
from tests.extensions.ipc_store import IpcStore
from tests.services import PostgresServer, S3Server, start_postgres_server, start_s3_server

from podline.stores import DeltaStore, MemoryStore, Store, register_store

register_store(IpcStore)  # so open_store (configs, pickles) reaches it, as a plugin's would

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp: MemoryStore(),
    # No timed flushes: tests decide when buffers are flushed.
    "delta": lambda tmp: DeltaStore(tmp / "store", flush_seconds=None),
    # A backend written against the public API only (tests/extensions): the contract holds
    # for third-party backends too.
    "ipc": lambda tmp: IpcStore(tmp / "ipc"),
}


@pytest.fixture(scope="session", autouse=True)
def _source_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """File sources cache their build in a directory of the session, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODLINE_CACHE_DIR", str(tmp_path_factory.mktemp("podline-cache")))
        yield


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A local S3-compatible server for the session (see ``tests/services.py``)."""
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.credentials().items():
            patch.setenv(name, value)
        yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the session (see ``tests/services.py``)."""
    server = start_postgres_server()
    yield server
    server.close()


@pytest.fixture
def pg_store(pg_server: PostgresServer) -> Iterator[Store]:
    """A fresh, empty ``PostgresStore``: a PostgreSQL schema of its own in the test cluster."""
    from podline.stores import PostgresStore

    store = PostgresStore(pg_server.url(), schema=f"t_{uuid.uuid4().hex[:12]}")
    yield store
    store.close()


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[DeltaStore]:
    """A fresh, empty ``DeltaStore`` on the local S3 server."""
    store = DeltaStore(
        s3_server.new_root(), storage_options=s3_server.storage_options(), flush_seconds=None
    )
    yield store
    store.close()


def _eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` (for what a background thread does) until it holds or time is up."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """``eventually(condition, seconds=10.0)``: poll until ``condition()`` holds."""
    return _eventually


def _ctrl_c_in_a_notebook(cell: Callable[[], Awaitable[None]], after: float) -> float:
    """Run ``cell()`` on a bare event loop, as a Jupyter kernel does (no ``asyncio.run``
    handler turning SIGINT into a cancel), with Ctrl-C (a KeyboardInterrupt in the main
    thread) ``after`` seconds in; check the interrupt came through and return how long the
    cell took."""
    loop = asyncio.new_event_loop()
    timer = threading.Timer(after, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        timer.join()
        loop.close()
    return time.perf_counter() - started


@pytest.fixture
def python_sigint() -> None:
    """Skips a test of Ctrl-C where Python does not own SIGINT, or off the main thread. A
    job started in the background by a shell without job control has SIGINT ignored, and
    Python then installs no handler: Ctrl-C, and ``_thread.interrupt_main``, do nothing."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        pytest.skip("needs the main thread and Python's own SIGINT handler")


@pytest.fixture
def ctrl_c_in_a_notebook(
    python_sigint: None,
) -> Callable[[Callable[[], Awaitable[None]], float], float]:
    """``ctrl_c_in_a_notebook(cell, after)``: see ``_ctrl_c_in_a_notebook`` (skipped as
    ``python_sigint`` skips)."""
    return _ctrl_c_in_a_notebook


class ModuleTree:
    """A directory of modules on ``sys.path``: write and edit files, then ``load`` a module
    afresh (every module loaded from the directory is forgotten first), as a new process
    would see the edited files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write(self, path: str, source: str) -> Path:
        """Write ``path`` (``"pkg/mod.py"``); packages get an ``__init__.py``."""
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in target.relative_to(self.root).parents:
            init = self.root / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        target.write_text(textwrap.dedent(source))
        return target

    def edit(self, path: str, old: str, new: str) -> None:
        target = self.root / path
        text = target.read_text()
        assert old in text, f"{old!r} is not in {path}"
        target.write_text(text.replace(old, new))

    def forget(self) -> None:
        root = str(self.root)
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(root):
                del sys.modules[name]
        importlib.invalidate_caches()

    def load(self, name: str) -> ModuleType:
        self.forget()
        return importlib.import_module(name)

    def distribution(self, name: str, version: str, top_level: str | None = None) -> None:
        """Install metadata for distribution ``name`` (as pip leaves it in site-packages)."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        if top_level is not None:
            (info / "top_level.txt").write_text(top_level + "\n")


@pytest.fixture
def user_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleTree]:
    """The user's own modules (code identity follows them)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc after an edit
    tree = ModuleTree(tmp_path / "project")
    monkeypatch.syspath_prepend(str(tree.root))
    yield tree
    tree.forget()


@pytest.fixture
def installed_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleTree]:
    """A site-packages directory on ``sys.path`` (code identity does not follow it)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    tree = ModuleTree(tmp_path / "env" / "lib" / "site-packages")
    monkeypatch.syspath_prepend(str(tree.root))
    yield tree
    tree.forget()


settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
