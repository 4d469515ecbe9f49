"""A store written before the compact layout (podline at commit 992c1ff) keeps working.

``data/store_992c1ff`` was written by that commit's code running ``build`` twice (a run that
computes, then a fully cached one):

    PYTHONPATH=<checkout of 992c1ff>/src python -m tests.pipeline.test_store_992c1ff <dir>

Its records hold the input packet hash in every row, its memo the source-info tokens, its
status tables a row per packet and run, and its hash tables are uncompressed. The current code
reads all of it, computes nothing on the next run, and appends rows in its own layout beside
the old ones.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore

OLD_STORE = Path(__file__).parent / "data" / "store_992c1ff"
ROWS = 6


@function_pod("y", live_output=False)
def double(x: int) -> int:
    return 2 * x


@function_pod("z", live_output=False)
def shift(y: int) -> int:
    return y + 100


def build(store: DeltaStore) -> Pipeline:
    rows = [{"id": i, "x": i} for i in range(ROWS)]
    with Pipeline("old", store) as pipeline:
        shift.pod(double.pod(podline.DictSource(rows, tag_columns=["id"], label="numbers")))
    return pipeline


def test_the_next_run_on_an_old_store_computes_nothing_and_reads_work(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(OLD_STORE, root)
    with DeltaStore(root) as store:
        pipeline = build(store)
        before = pipeline.nodes["shift"].as_table()
        result = pipeline.run(run_id="new")
        assert {label: c.computed for label, c in result.counts.items()} == {
            "numbers": 0,
            "double": 0,
            "shift": 0,
        }
        assert result.counts["shift"].cached == ROWS
        after = pipeline.nodes["shift"].as_table(all_info=True)
        assert after.select(before.column_names).sort_by("id").equals(before.sort_by("id"))
        assert after.column("z").to_pylist() == [2 * i + 100 for i in range(ROWS)]
    # Every value and hidden column (source info read from the old memo's stored tokens,
    # content hashes) equals what the current layout gives on a store of its own.
    with DeltaStore(tmp_path / "fresh") as store:
        fresh = build(store)
        fresh.run()
        assert (
            fresh.nodes["shift"].as_table(all_info=True).sort_by("id").equals(after.sort_by("id"))
        )
    with DeltaStore(root) as store:
        fresh = build(store)
        status = fresh.status()
        assert status.height == 2 * ROWS
        assert set(status["run_id"]) == {"new"}
        assert set(status["state"]) == {"CACHED"}
        runs = fresh.runs()
        assert runs["cached"].to_list()[0] == 2 * ROWS
        assert runs.height == 3
        trace = fresh.trace("shift", id=2)
        assert set(trace.frame["status"].drop_nulls()) >= {"computed"}
        assert fresh.impact("numbers", id=3).frame.height >= 2
        cached = fresh.nodes["shift"].as_table()
        assert cached.sort_by("id").column("z").to_pylist() == [2 * i + 100 for i in range(ROWS)]
    with DeltaStore(root) as store:
        assert build(store).run().counts["shift"].computed == 0


def _write(root: Path) -> None:
    """Write the test store (see the module docs)."""
    for run_id in ("first", "cached"):
        with DeltaStore(root) as store:
            build(store).run(run_id=run_id)


if __name__ == "__main__":
    _write(Path(sys.argv[1]))
