"""``podline show`` of an operator node, by its cache mode: a LOG node's logged rows (every
run's, said so), an OFF node's reason for showing none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_commands import podline, project  # noqa: F401 (the fixture)

FILTERS = """
import polars as pl
import podline

numbers = podline.DictSource(
    [{"k": i, "x": float(i)} for i in range(5)], tag_columns=["k"], source_id="s"
)
with podline.Pipeline("modes", cache_modes={"logged": "log"}) as modes:
    numbers.filter(pl.col("x") > 1, label="logged")
    numbers.filter(pl.col("x") > 2, label="unkept")
"""


def test_a_logged_operator_shows_its_logged_rows_and_an_unkept_one_says_why(
    project: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "modes.py").write_text(FILTERS)
    podline(capsys, "run", "modes.py")
    out, _ = podline(capsys, "show", "logged")
    lines = out.splitlines()
    cells = [line.split()[1] for line in lines if line.startswith("│ ") and "┆" in line]
    assert cells == ["k", "2", "3", "4"]  # the header, then the rows
    assert lines[-1] == "(the rows every run of operator node 'logged' logged: cache mode 'log')"
    out, _ = podline(capsys, "show", "logged", "--json")
    assert out.count('"k"') == 3
    out, _ = podline(capsys, "show", "unkept")
    assert out == (
        "(no rows: operator node 'unkept' stores no rows (cache mode 'off'): runs compute its "
        "output and keep none of it; mode 'log' keeps every run's rows "
        "(Pipeline(cache_modes={'unkept': 'log'})), and its upstreams' results are in the "
        "store)\n"
    )


PATHS = """
from pathlib import Path
from typing import Optional
import podline

@podline.function_pod("out")
def write(k: int) -> Optional[Path]:
    if k == 2:
        return None
    path = Path(f"note-{k}.txt").resolve()
    path.write_text(str(k))
    return path

with podline.Pipeline("paths") as paths:
    write.pod(podline.DictSource([{"i": k, "k": k} for k in range(3)], tag_columns=["i"]))
"""


def test_path_values_show_as_their_paths(
    project: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A column of ``Path`` values is shown (and printed as JSON) as the paths, not as the
    struct that stores them."""
    (project / "paths.py").write_text(PATHS)
    podline(capsys, "run", "paths.py")
    out, _ = podline(capsys, "show", "write", "--json")
    rows = json.loads(out)
    assert [row["out"] for row in rows] == [
        str((project / "note-0.txt").resolve()),
        str((project / "note-1.txt").resolve()),
        None,
    ]
    out, _ = podline(capsys, "show", "write")
    assert "┆ /" in out  # (long paths are shortened to the terminal's width)
    assert "__file_path" not in out
    assert "{" not in out
