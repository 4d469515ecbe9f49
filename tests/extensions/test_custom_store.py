"""A store backend written against the public API only (``ipc_store.IpcStore``): it passes the
whole store contract (``tests/conftest.py`` runs every store-backed test against it), installs
through an entry point, and carries a pipeline's memo across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.extensions.ipc_store import IpcStore

import podline
from podline.errors import StoreError
from podline.pipeline import Pipeline
from podline.stores import Store, open_store, register_store, store_schemes

ROOT = Path(__file__).resolve().parents[2]


def _install(site: Path, entry: str) -> None:
    """A minimal installed distribution in ``site`` declaring ``entry`` in the store group,
    which is all ``importlib.metadata`` needs to find it."""
    info = site / "ipc_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ipc-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[podline.stores]\n{entry}\n")


def _python(site: Path, code: str) -> str:
    """Run ``code`` as a script (pods need a source file) in a fresh process seeing ``site``."""
    script = site / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


PIPELINE = """
    import podline
    from podline.pipeline import Pipeline
    from podline.stores import open_store

    @podline.function_pod("y")
    def triple(x: int) -> int:
        return 3 * x

    store = open_store({config!r})
    with Pipeline("p", store) as pipeline:
        triple.pod(podline.DictSource([{{"k": i, "x": i}} for i in range(4)], tag_columns=["k"]))
    result = pipeline.run()
    print(type(store).__name__, result.counts["triple"].computed,
          sorted(pipeline.triple.as_table().column("y").to_pylist()))
    store.close()
"""


def test_an_installed_backend_runs_a_pipeline_and_its_memo_survives(tmp_path: Path) -> None:
    _install(tmp_path / "site", "ipc = tests.extensions.ipc_store:IpcStore")
    config = f"ipc://{tmp_path / 'records'}"
    first = _python(tmp_path / "site", PIPELINE.format(config=config))
    second = _python(tmp_path / "site", PIPELINE.format(config=config))
    assert first.split() == ["IpcStore", "4", "[0,", "3,", "6,", "9]"]
    # A fresh process finds the memo through the same backend: nothing is computed again.
    assert second.split() == ["IpcStore", "0", "[0,", "3,", "6,", "9]"]
    assert any(p.suffix == ".arrow" for p in (tmp_path / "records").rglob("*"))


def test_installed_schemes_are_listed_before_loading(tmp_path: Path) -> None:
    _install(tmp_path / "site", "ipc = tests.extensions.ipc_store:IpcStore")
    out = _python(
        tmp_path / "site",
        """
        import sys
        from podline.stores import store_schemes
        print("ipc://" in store_schemes(), "tests.extensions.ipc_store" in sys.modules)
        """,
    )
    assert out.split() == ["True", "False"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("ipc = tests.extensions.no_such_module:IpcStore", "failed to load: ModuleNotFound"),
        ("ipc = tests.extensions.ipc_store:IpcBackend", "is not a store class opening ipc://"),
        ("kv = tests.extensions.ipc_store:IpcStore", "is not a store class opening kv://"),
    ],
)
def test_a_broken_plugin_is_a_store_error_naming_it(
    tmp_path: Path, entry: str, message: str
) -> None:
    _install(tmp_path / "site", entry)
    scheme = entry.partition(" ")[0]
    out = _python(
        tmp_path / "site",
        f"""
        from podline.errors import StoreError
        from podline.stores import open_store
        try:
            open_store("{scheme}:///somewhere")
        except StoreError as exc:
            print(exc)
        """,
    )
    assert message in out
    assert entry.partition(" = ")[2] in out


def test_a_registered_class_opens_its_scheme(tmp_path: Path) -> None:
    store = open_store(f"ipc://{tmp_path}#a/b")
    assert isinstance(store, IpcStore)
    assert isinstance(store, Store)
    assert store.prefix == ("a", "b")
    assert "ipc://" in store_schemes()


def test_two_classes_claiming_one_scheme_is_an_error() -> None:
    class Other(IpcStore):
        __slots__ = ()

    with pytest.raises(StoreError, match=r"ipc:// by IpcStore already; pass replace=True"):
        register_store(Other)
    register_store(Other, replace=True)
    try:
        assert type(open_store("ipc:///tmp/x")) is Other
    finally:
        register_store(IpcStore, replace=True)
    with pytest.raises(StoreError, match="names no URL schemes"):
        register_store(type("Empty", (IpcStore,), {"schemes": ()}))


def test_an_unknown_scheme_names_what_is_known() -> None:
    with pytest.raises(StoreError, match=r"no store backend opens kv://; known: .*memory://"):
        open_store("kv://x")


def test_memo_through_a_custom_store_in_process(tmp_path: Path) -> None:
    calls: list[int] = []

    @podline.function_pod("y")
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    def run() -> Pipeline:
        with Pipeline("p", IpcStore(tmp_path)) as pipeline:
            square.pod(podline.DictSource([{"k": i, "x": i} for i in range(3)], tag_columns=["k"]))
        pipeline.run()
        return pipeline

    run()
    again = run()
    assert calls == [0, 1, 2]
    assert again.square.as_table().column("y").to_pylist() == [0, 1, 4]
