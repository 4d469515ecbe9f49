"""default_store(): the PODLINE_STORE variable, else ./.podline."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.errors import StoreError
from podline.stores import DeltaStore, MemoryStore, default_store

from .conftest import records


def test_default_is_dot_podline_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PODLINE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    store = default_store()
    assert isinstance(store, DeltaStore)
    assert store.root == (tmp_path / ".podline").as_posix()
    assert not (tmp_path / ".podline").exists()  # created on first use
    with store:
        store.write("t", records(["a"], v=[1]))
    assert (tmp_path / ".podline").is_dir()
    assert default_store().read("t", ["a"]).num_rows == 1


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_variable_means_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    monkeypatch.setenv("PODLINE_STORE", blank)
    monkeypatch.chdir(tmp_path)
    assert default_store().root == (tmp_path / ".podline").as_posix()


def test_variable_names_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PODLINE_STORE", "relative/dir")
    store = default_store()
    assert isinstance(store, DeltaStore)
    assert store.root == (tmp_path / "relative" / "dir").as_posix()
    monkeypatch.setenv("PODLINE_STORE", (tmp_path / "abs").as_uri())
    assert default_store().root == (tmp_path / "abs").as_posix()


def test_variable_names_any_store(monkeypatch: pytest.MonkeyPatch) -> None:
    named = MemoryStore("shared-default")
    named.write("t", records(["a"], v=[1]))
    monkeypatch.setenv("PODLINE_STORE", "memory://shared-default#t")
    store = default_store()
    assert isinstance(store, MemoryStore)
    assert store.prefix == ("t",)
    assert store.read((), ["a"]).num_rows == 1


@pytest.mark.parametrize("config", ["s3://", "gs://", "az://", "s3:///dir", "file://"])
def test_a_url_without_its_bucket_or_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str
) -> None:
    # "s3://" used to become a local store in the directory "./s3:".
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PODLINE_STORE", config)
    with pytest.raises(StoreError, match=f"malformed store URL '{config}'"):
        default_store()
    assert list(tmp_path.iterdir()) == []
