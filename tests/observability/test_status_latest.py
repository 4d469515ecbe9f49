"""``status()`` with ``latest=True``: one row per (node, tag values), from the latest run that
touched it, without rows of older source versions or other nodes' empty system-tag columns."""

from __future__ import annotations

import polars as pl

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import Store


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
