"""Files as inputs: a row naming a missing or unreadable file fails alone, not the run."""

from __future__ import annotations

from pathlib import Path

import pytest

import podline
from podline import function_pod
from podline.errors import FunctionCallError, InputFileError
from podline.functions import RowStatus
from podline.hashing import hash_table, unreadable_files
from podline.pipeline import Pipeline
from podline.stores import Store

CALLS: list[str] = []


@function_pod("size", live_output=False)
def size(path: Path) -> int:
    CALLS.append(path.name)
    return len(path.read_bytes())


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def files(tmp_path: Path, names: list[str]) -> podline.Source:
    for name in names:
        if name != "gone.txt":
            (tmp_path / name).write_text(name * 2)
    rows = [{"name": name, "path": tmp_path / name} for name in names]
    return podline.DictSource(rows, tag_columns=["name"])


def test_a_missing_input_file_fails_its_row_only(tmp_path: Path, store: Store) -> None:
    source = files(tmp_path, ["a.txt", "gone.txt", "bb.txt"])
    with Pipeline("files", store) as pipeline:
        size.pod(source)
    counts = pipeline.run().counts["size"]
    assert (counts.computed, counts.failed, counts.rows) == (2, 1, 2)
    assert sorted(CALLS) == ["a.txt", "bb.txt"]  # the function never saw the missing file
    failed = pipeline.status(state="FAILED").row(0, named=True)
    assert failed["name"] == "gone.txt"
    assert failed["error_type"] == "InputFileError"
    assert "column 'path': file" in failed["error_message"]
    assert "gone.txt' does not exist" in failed["error_message"]

    # Once the file exists, the row has a new identity and is computed; the others are cached.
    (tmp_path / "gone.txt").write_text("back")
    with Pipeline("files", store) as again:
        size.pod(files(tmp_path, ["a.txt", "gone.txt", "bb.txt"]))
    counts = again.run().counts["size"]
    assert (counts.computed, counts.cached, counts.failed) == (1, 2, 0)


def test_fail_fast_names_the_row_and_the_file(tmp_path: Path) -> None:
    result = size.execute(files(tmp_path, ["gone.txt", "a.txt"]), on_error="continue")
    assert result.status == [RowStatus.FAILED, RowStatus.COMPUTED]
    error = result.errors[0]
    assert isinstance(error.__cause__, InputFileError)
    assert "tag {'name': 'gone.txt'}" in str(error)
    with pytest.raises(FunctionCallError, match=r"gone\.txt' does not exist"):
        size.execute(files(tmp_path, ["gone.txt"]))


def test_unreadable_and_directory_inputs_fail_too(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    locked = tmp_path / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    try:
        readable = True
        try:
            locked.read_bytes()
        except PermissionError:
            readable = False
        rows = [{"name": n, "path": tmp_path / n} for n in ("folder", "locked.txt")]
        result = size.execute(podline.DictSource(rows, tag_columns=["name"]), on_error="continue")
    finally:
        locked.chmod(0o600)
    assert result.status[0] is RowStatus.FAILED
    assert "is not a regular file" in str(result.errors[0])
    if not readable:  # (root reads anything)
        assert result.status[1] is RowStatus.FAILED


def test_a_source_naming_a_missing_file_still_has_an_identity(tmp_path: Path) -> None:
    source = files(tmp_path, ["a.txt", "gone.txt"])
    table = source.as_table(system_tags=True)
    first = hash_table(table)
    (tmp_path / "gone.txt").write_text("here now")
    assert hash_table(table) != first  # the missing file is a value of its own
    (tmp_path / "gone.txt").unlink()
    assert hash_table(table) == first
    assert unreadable_files(table) == {
        1: f"column 'path': file {str(tmp_path / 'gone.txt')!r} does not exist, so it cannot "
        "be hashed"
    }


def test_nested_files_are_checked(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    rows = [
        {"id": 0, "paths": [tmp_path / "a.txt"]},
        {"id": 1, "paths": [tmp_path / "a.txt", tmp_path / "nope.txt"]},
    ]
    table = podline.DictSource(rows, tag_columns=["id"]).as_table()
    assert list(unreadable_files(table)) == [1]


@function_pod("length", live_output=False)
def length_after_an_edit(path: Path) -> int:
    # A lab member saves the file while the call runs: the function reads the new content.
    if path.read_text() == "old":
        path.write_text("new content")
    return len(path.read_text())


def test_an_input_file_changed_while_its_call_ran_is_not_stored(
    tmp_path: Path, store: Store
) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    source = podline.DictSource([{"name": "f", "path": target}], tag_columns=["name"])
    with Pipeline("edited", store) as pipeline:
        length_after_an_edit.pod(source)
    counts = pipeline.run(error_policy="continue").counts["length_after_an_edit"]
    assert (counts.computed, counts.failed) == (0, 1)
    failed = pipeline.status(state="FAILED").row(0, named=True)
    assert failed["error_type"] == "InputFileError"
    assert f"file {str(target)!r} changed while the function ran" in failed["error_message"]

    # Put back, the file's old content is computed again: the store never held a result
    # made from the new content under the old content's identity.
    target.write_text("old")
    with Pipeline("edited", store) as again:
        length_after_an_edit.pod(
            podline.DictSource([{"name": "f", "path": target}], tag_columns=["name"])
        )
    assert again.run(error_policy="continue").counts["length_after_an_edit"].cached == 0
    target.write_text("new content")
    with Pipeline("edited", store) as third:
        length_after_an_edit.pod(
            podline.DictSource([{"name": "f", "path": target}], tag_columns=["name"])
        )
    result = third.run()
    assert result.counts["length_after_an_edit"].computed == 1
    assert third.length_after_an_edit.as_table().column("length").to_pylist() == [11]
