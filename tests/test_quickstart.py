"""The README's main job: ``examples/quickstart.py``, run twice on a fresh default store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).parents[1] / "examples" / "quickstart.py"


def _run(store: Path) -> dict[str, list[int]]:
    env = {**os.environ, "PODLINE_STORE": str(store)}
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], capture_output=True, text=True, env=env, check=True
    )
    # The run summary: "  <node> <computed> <cached> <skipped> <failed> <rows>".
    rows = re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", done.stdout, re.M)
    return {node: [int(n) for n in counts] for node, *counts in rows}


def test_the_quickstart_computes_once_then_serves_everything_from_the_store(
    tmp_path: Path,
) -> None:
    first = _run(tmp_path / "store")
    # Sources, a join, two function pods, a batch and a filter, in that order.
    assert list(first) == [
        "measurements.csv",
        "DictSource",
        "trials",
        "speed",
        "grade",
        "pairs",
        "with_fast",
    ]
    assert first["speed"][:4] == [5, 0, 1, 0]  # one trial has no reaction: skipped
    assert first["grade"][:4] == [5, 0, 0, 0]
    second = _run(tmp_path / "store")
    assert second["speed"][:4] == [0, 5, 1, 0]  # the skip is remembered too (B17)
    assert second["grade"][:4] == [0, 5, 0, 0]
    assert {node: counts[4] for node, counts in second.items()} == {
        node: counts[4] for node, counts in first.items()
    }
