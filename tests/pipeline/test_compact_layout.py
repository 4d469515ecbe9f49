"""The compact store layout (docs/pipelines.md, "What a run adds"): no stored column that
repeats another or that a read can make, and a fully cached re-run adding next to nothing.
Structural checks only; the sizes at a million rows are in docs/performance.md."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

import podline
from podline import function_pod
from podline.columns import source_info_column
from podline.nodes.records import INPUT_HASH, RESULT_ID
from podline.pipeline import Pipeline
from podline.stores import RECORD_ID, DeltaStore, Store


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


def build(store: Store, rows: int) -> Pipeline:
    ints = np.arange(rows)
    table = pa.table({"k": ints + 10_000, "a": ints, "b": ints * 2})
    with Pipeline("layout", store) as pipeline:
        add.pod(podline.ArrowTableSource(table, ["k"], source_id="numbers"))
    return pipeline


def tables(root: Path) -> dict[str, Path]:
    """Every Delta table under ``root``, by its path relative to ``root``."""
    return {str(log.parent.relative_to(root)): log.parent for log in root.rglob("_delta_log")}


def table_of(root: Path, kind: str) -> Path:
    (found,) = [path for name, path in tables(root).items() if kind in name]
    return found


def live_bytes(root: Path) -> int:
    """Bytes of the data files the tables' logs refer to, and of the logs."""
    total = 0
    for path in tables(root).values():
        total += sum(Path(uri).stat().st_size for uri in DeltaTable(str(path)).file_uris())
        total += sum(f.stat().st_size for f in (path / "_delta_log").rglob("*") if f.is_file())
    return total


def test_no_stored_column_repeats_another(store: Store) -> None:
    build(store, 300).run()
    checked = 0
    for path in store.list():
        table = store.scan(path)
        assert table is not None
        if table.num_rows < 300:  # run records, specs, code: a few rows, equal by chance
            continue
        for left, right in combinations(table.column_names, 2):
            a, b = table.column(left), table.column(right)
            if a.type == b.type and a.null_count < len(a):
                assert not a.equals(b), f"{'/'.join(path)}: {left} == {right}"
        checked += 1
    assert checked == 4  # records, memo, status, logs
    (path,) = [p for p in store.list() if p[-1] == "records"]
    records = store.scan(path)
    assert records is not None
    assert records.column(INPUT_HASH).null_count == records.num_rows  # all equal the result id
    assert records.column(RESULT_ID).null_count == 0


def test_memo_tokens_and_input_hashes_read_back_as_before(tmp_path: Path) -> None:
    """Tokens are made on read, equal to those of the calls; delta-rs and polars read the
    same compact tables podline reads."""
    store = DeltaStore(tmp_path / "store")
    pipeline = build(store, 200)
    pipeline.run()
    output = pipeline.nodes["add"].as_table(all_info=True)
    memo_path = table_of(tmp_path / "store", "functions/add")
    memo = DeltaTable(str(memo_path)).to_pyarrow_table()
    assert source_info_column("total") not in memo.column_names
    # A new pipeline object reads its output from the records and the memo: the tokens
    # made on read are those the calls made.
    fresh = build(DeltaStore(tmp_path / "store"), 200).nodes["add"].as_table(all_info=True)
    assert fresh.sort_by("k").equals(output.sort_by("k"))
    assert fresh.column(source_info_column("total")).null_count == 0
    for kind in ("functions/add", "records"):
        path = table_of(tmp_path / "store", kind)
        by_delta_rs = DeltaTable(str(path)).to_pyarrow_table()
        by_polars = pl.read_delta(str(path))
        name = path.relative_to(tmp_path / "store").with_suffix("").parts
        ours = store.scan(name)
        assert ours is not None
        ordered = by_delta_rs.column_names
        assert (
            by_polars.sort(RECORD_ID)
            .to_arrow()
            .select(ordered)
            .cast(ours.select(ordered).schema)
            .equals(ours.select(ordered).sort_by(RECORD_ID))
        )
        assert (
            by_delta_rs.sort_by(RECORD_ID)
            .cast(ours.select(ordered).schema)
            .equals(ours.select(ordered).sort_by(RECORD_ID))
        )
    store.close()


def test_a_fully_cached_rerun_adds_at_most_one_percent(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rows = 20_000
    with DeltaStore(root) as store:
        build(store, rows).run()
    first = live_bytes(root)
    runs = []
    for _ in range(2):
        with DeltaStore(root) as store:
            result = build(store, rows).run()
        assert result.counts["add"].cached == rows
        runs.append(result.run_id)
    added = live_bytes(root) - first
    assert added <= 0.01 * first * 2, (added, first)
    found = {name: path for name, path in tables(root).items() if "/status/" in name}
    (status,) = [path for name, path in found.items() if not name.endswith("/listed.delta")]
    (markers,) = [path for name, path in found.items() if name.endswith("/listed.delta")]
    # The status table holds the first run's rows; a cached run's one row is carried by its
    # run record (observability/carried.py).
    assert not set(pl.read_delta(str(status))["__meta:run_id"]) & set(runs)
    records = pl.read_delta(str(tables(root)["pipelines/layout/runs.delta"]))
    carried = records.filter(pl.col("status_same_as").is_not_null())
    assert sorted(carried["run_id"]) == sorted(runs)  # a row per cached run
    assert set(carried["status_packets"]) == {rows}
    assert pl.read_delta(str(markers)).height == 1  # the first run's marker
