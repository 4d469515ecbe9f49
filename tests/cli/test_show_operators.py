"""``podline show`` of an operator node, by its cache mode: a LOG node's logged rows (every
run's, said so), an OFF node's reason for showing none."""

from __future__ import annotations

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
