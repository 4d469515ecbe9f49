"""Bounded memory, asserted structurally: file sources are read chunk by chunk through the
nodes, large outputs are held on disk, and unmaterialized runs let go of function outputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import podline
from podline import function_pod
from podline.nodes import kinds
from podline.pipeline import Pipeline
from podline.stores import Store
from podline.streams import ChunkedTableStream, chunked

N = 300


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


@function_pod("twice", live_output=False)
def double(total: int) -> int:
    return 2 * total


def _pipeline(tmp_path: Path, store: Store) -> Pipeline:
    path = tmp_path / "rows.parquet"
    if not path.exists():
        rows = pa.table({"k": range(N), "a": range(N), "b": [2 * i for i in range(N)]})
        pq.write_table(rows, str(path), row_group_size=50)
    with Pipeline("streamed", store, observe=False) as pipeline:
        double.pod(add.pod(podline.ParquetSource(path, ["k"])))
    return pipeline


def _expected() -> list[int]:
    return [2 * 3 * i for i in range(N)]


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_a_file_source_flows_through_the_nodes_chunk_by_chunk(
    tmp_path: Path, store: Store, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = _pipeline(tmp_path, store)
    monkeypatch.setattr(kinds, "NODE_BATCH", 64)

    def whole(self: ChunkedTableStream, **options: object) -> pa.Table:
        raise AssertionError("a chunked stream was read whole during the run")

    with monkeypatch.context() as patch:
        patch.setattr(ChunkedTableStream, "as_table", whole)
        patch.setattr(chunked, "SPILL_BYTES", 1)  # outputs held on disk, read in chunks
        result = pipeline.run(orchestrator=orchestrator)
    assert result.counts["double"].computed == N
    output = result.node_outputs["double"]
    assert isinstance(output, ChunkedTableStream)
    assert output.as_table().column("twice").to_pylist() == _expected()


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_an_unmaterialized_run_lets_go_of_function_outputs(
    tmp_path: Path, store: Store, orchestrator: str
) -> None:
    pipeline = _pipeline(tmp_path, store)
    result = pipeline.run(orchestrator=orchestrator, materialize_results=False)
    assert result.node_outputs == {}
    assert (result.counts["add"].rows, result.counts["double"].rows) == (N, N)
    for label in ("add", "double"):
        assert not getattr(pipeline, label).has_output  # nothing of it held in memory
    # Reads serve the stored results, as in a fresh process.
    assert pipeline.double.as_table().column("twice").to_pylist() == _expected()
    cached = pipeline.run(orchestrator=orchestrator, materialize_results=False)
    assert cached.counts["double"].cached == N
    assert not pipeline.double.has_output
