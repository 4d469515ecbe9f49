"""Two calls returning one output file: the file holds what one of them wrote, so the other's
stored result names a file that is not its own. The run warns, naming both rows and the file
(user test: a grid with a duplicated config name wrote one model file for two configs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import podline
from podline import function_pod
from podline.functions import SharedOutputFileWarning
from podline.pipeline import Pipeline
from podline.stores import MemoryStore


@function_pod("model")
def train(alpha: float, name: str, out: str) -> Path:
    path = Path(out, f"{name}.txt")
    path.write_text(f"alpha={alpha}")
    return path


def _run(tmp_path: Path, names: list[str]) -> None:
    rows = [
        {"row": i, "alpha": float(i), "name": name, "out": str(tmp_path)}
        for i, name in enumerate(names)
    ]
    source = podline.DictSource(rows, tag_columns=["row"], source_id="grid")
    with Pipeline("grid", store=MemoryStore()) as pipeline:
        train.pod(source)
    pipeline.run()


def test_two_calls_returning_one_file_warn(tmp_path: Path) -> None:
    shared = str(tmp_path / "c2.txt")
    with pytest.warns(SharedOutputFileWarning) as caught:
        _run(tmp_path, ["c1", "c2", "c3", "c2"])
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith("train: the calls of the rows with tags {'row': 1} and {'row': 3}")
    assert repr(shared) in message


def test_a_file_of_its_own_per_call_does_not_warn(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SharedOutputFileWarning)
        _run(tmp_path, ["c1", "c2", "c3"])
