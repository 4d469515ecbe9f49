"""``status()`` with ``latest=True``: one row per (node, tag values), from the latest run that
touched it, without rows of older source versions or other nodes' empty system-tag columns."""

from __future__ import annotations

import polars as pl

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import MemoryStore, Store


@function_pod("y", live_output=False)
def double(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return 2 * x


def source(values: list[int], label: str = "numbers") -> podline.DictSource:
    rows = [{"id": i, "x": v} for i, v in enumerate(values)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def system_columns(frame: pl.DataFrame) -> list[str]:
    """The friendly names of system-tag columns (``tag:source_id::...``)."""
    return [c for c in frame.columns if c.startswith(("tag:source_id::", "tag:record_id::"))]


def test_a_new_source_version_replaces_the_old_rows(store: Store) -> None:
    with Pipeline("versions", store) as pipeline:
        double.pod(source([1, 2, 3]))
    pipeline.run()
    with Pipeline("versions", store) as pipeline:  # same tags, new values: a new source id
        double.pod(source([10, 20, 30]))
    second = pipeline.run().run_id

    status = pipeline.status(node="double")
    assert status.height == 3  # not 6: the first version's rows are gone
    assert sorted(status["id"]) == [0, 1, 2]
    assert set(status["run_id"]) == {second}
    one = pipeline.status(node="double", id=1)
    assert one.height == 1
    assert one["run_id"][0] == second
    assert pipeline.status(latest=False, node="double").height == 6  # history keeps both


def test_no_empty_system_tag_columns_of_other_nodes_or_graphs(store: Store) -> None:
    left, right = source([1, 2]), source([5, 6], label="other")
    right = right.map_packets({"x": "w"})
    with Pipeline("columns", store) as pipeline:
        double.pod(left)
    pipeline.run()
    with Pipeline("columns", store) as pipeline:  # "double" now reads a join: other lineages
        double.pod(left.join(right).drop_packet_columns("w"))
    pipeline.run()

    status = pipeline.status(node="double")
    assert status.height == 2
    columns = system_columns(status)
    assert len(columns) == 4  # two lineages, each a source id and a record id
    for column in columns:
        assert status[column].null_count() == 0, column
    history = pipeline.status(node="double", latest=False)
    assert len(system_columns(history)) == 6  # the old graph's lineage is history


def test_packets_sharing_tag_values_in_one_run_stay_apart(store: Store) -> None:
    rows = [{"id": 1, "x": 1}, {"id": 1, "x": -1}]  # equal tags, two source records
    with Pipeline("shared", store) as pipeline:
        double.pod(podline.DictSource(rows, tag_columns=["id"]))
    pipeline.run()
    status = pipeline.status()
    assert sorted(status["state"]) == ["FAILED", "SUCCESS"]  # the failure is not hidden
    assert status["state"][0] == "FAILED"


def _versions(store: Store, name: str, versions: list[list[int]]) -> list[Pipeline]:
    """Run ``double`` on each source version in turn (a source gaining rows each run)."""
    pipelines = []
    for values in versions:
        with Pipeline(name, store) as pipeline:
            double.pod(source(values))
        pipeline.run(error_policy="continue")
        pipelines.append(pipeline)
    return pipelines


_GROWING = [[1, -2], [1, 2, 3], [1, 2, 3, -4]]
#: Columns that differ from store to store.
_VARYING = ("run_id", "timestamp", "started_at", "pipeline_uri")


def test_a_growing_source_keeps_one_status_and_one_logs_table(store: Store) -> None:
    first, _, last = _versions(store, "growing", _GROWING)
    node = last.double
    assert node.content_hash() != first.double.content_hash()  # each version its own node
    scope = store.at("pipelines", "growing")
    table = [(node.label, node.pipeline_hash().short(16))]
    assert scope.at("status").list() == [*table, (*table[0], "listed")]  # and its markers
    assert scope.at("logs").list() == table
    # Provenance records are one table too (see tests/pipeline/test_records.py).
    assert len(scope.at("nodes").list()) == 1

    runs = last.runs()["run_id"].to_list()[::-1]  # oldest first
    status = last.status(node="double").sort("id")
    assert status["id"].to_list() == [0, 1, 2, 3]
    assert status["state"].to_list() == ["CACHED", "CACHED", "CACHED", "FAILED"]
    assert set(status["run_id"]) == {runs[2]}
    assert set(status["node_hash"]) == {str(node.content_hash())}
    one = last.status(node="double", id=1, latest=False)
    assert one["state"].to_list() == ["FAILED", "SUCCESS", "CACHED"]
    failed = last.logs(state="FAILED").sort("id")
    assert failed["id"].to_list() == [1, 3]
    assert failed["run_id"].to_list() == [runs[0], runs[2]]
    assert node.as_table().num_rows == 3  # this version's rows (id 3 failed)


def test_observations_stored_per_content_hash_are_still_read(store: Store) -> None:
    # Stores written before status and log rows were kept per label and pipeline hash hold
    # a table per node version: runs of the first two versions are moved there.
    pipelines = _versions(store, "layouts", _GROWING[:2])
    for pipeline in pipelines:
        node = pipeline.double
        for kind in ("status", "logs"):
            scope = store.at("pipelines", "layouts", kind)
            version = {"__meta:node_hash": str(node.content_hash())}
            rows = scope.scan(node.identity_path[:2], where=version)
            assert rows is not None
            scope.append(node.identity_path, rows)
            scope.delete(node.identity_path[:2], rows.column("__record_id"))
    last = _versions(store, "layouts", _GROWING[2:])[0]
    assert len(store.at("pipelines", "layouts", "status").list()) == 4  # both layouts, markers

    expected = _versions(MemoryStore(), "layouts", _GROWING)[-1]  # all in the new layout
    for read in (
        lambda p: p.status().drop(*_VARYING),
        lambda p: p.status(latest=False).drop(*_VARYING),
        lambda p: p.logs().select("node", "id", "state", "stdout", "error_message", "node_hash"),
        lambda p: p.runs().select("complete", "computed", "cached", "skipped", "failed"),
    ):
        assert read(last).equals(read(expected))
