"""open_store: config strings and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.errors import StoreError
from podline.stores import DeltaStore, MemoryStore, open_store

from .conftest import records


def test_memory_configs() -> None:
    anonymous = open_store("memory://")
    assert isinstance(anonymous, MemoryStore)
    assert open_store("memory://") != anonymous
    named = MemoryStore("my store/1")
    assert named.to_config() == "memory://my%20store%2F1"
    assert open_store(named.to_config()) == named
    assert open_store(named.at("a", "b #c?").to_config()).prefix == ("a", "b #c?")


def test_stores_pass_through() -> None:
    store = MemoryStore()
    assert open_store(store) is store


def test_directory_configs(tmp_path: Path) -> None:
    odd = tmp_path / "with #hash and ?query"
    store = open_store(str(odd))
    assert isinstance(store, DeltaStore)
    assert store.root == odd.as_posix()
    assert open_store(store.to_config()).root == odd.as_posix()
    with store:
        store.write("a b/ü", records(["x"], v=[1]))
    again = open_store(store.to_config())
    assert again.write("a b/ü", records(["x", "y"], v=[1, 2])) == 1
    again.flush()
    assert again.scan("a b/ü").num_rows == 2
    assert again.list() == [("a b", "ü")]


@pytest.mark.parametrize("config", ["ftp://host/x", "nope://"])
def test_unknown_schemes(config: str) -> None:
    with pytest.raises(StoreError, match="no store backend"):
        open_store(config)


@pytest.mark.parametrize(
    "location", ["s3://", "gs://", "az://", "abfss://", "s3:///dir", "file://", "file://host/x"]
)
def test_malformed_urls_are_refused(location: str) -> None:
    for open_it in (open_store, DeltaStore):
        with pytest.raises(StoreError, match="malformed store URL"):
            open_it(location)


def test_from_config_checks_the_scheme(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="MemoryStore cannot open"):
        MemoryStore.from_config(tmp_path.as_uri())
    with pytest.raises(StoreError, match="DeltaStore cannot open"):
        DeltaStore.from_config("memory://x")
