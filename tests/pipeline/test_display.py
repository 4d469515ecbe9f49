"""Displaying streams and nodes (``repr``, ``str``, Jupyter's ``_repr_html_``) computes nothing:
it shows the schema, the upstream chain and whether rows are at hand."""

from __future__ import annotations

import podline
from podline import function_pod
from podline.functions import RowStatus
from podline.pipeline import Pipeline
from podline.stores import MemoryStore

CALLS: list[int] = []


@function_pod("slow", live_output=False)
def slow(x: int) -> int:
    CALLS.append(x)
    return x * 10


@function_pod("label", live_output=False)
def label(slow: int) -> str:
    return f"#{slow}"


def shows(obj: object) -> str:
    """Everything a notebook or a console would render, joined."""
    return "\n".join([repr(obj), str(obj), obj._repr_html_()])  # type: ignore[attr-defined]


def numbers(n: int) -> podline.DictSource:
    return podline.DictSource([{"id": i, "x": i} for i in range(n)], tag_columns=["id"])


def test_showing_streams_inside_a_pipeline_calls_nothing_and_the_run_computes_once() -> None:
    CALLS.clear()
    with Pipeline("display", MemoryStore()) as pipeline:
        slowed = slow.pod(numbers(12))
        batched = slowed.batch(batch_size=4, label="fours")
        labelled = label.pod(slowed)
        texts = [shows(slowed), shows(batched), shows(labelled)]
    assert CALLS == []
    slowed_text, batched_text, labelled_text = texts
    assert "not computed" in slowed_text
    assert "slow: int" in slowed_text  # the schema
    assert "DictSource (DictSource, 12 rows)" in slowed_text  # the chain, with what is at hand
    assert "slow: list[int]" in batched_text
    assert "slow (FunctionPod, not computed)" in labelled_text

    # Compiled but not run: the nodes show the same without computing or reading results.
    node_text = shows(pipeline.label)
    assert "not run yet" in node_text
    assert "label: str" in node_text
    assert "slow (FunctionNode, not run)" in node_text
    assert CALLS == []

    result = pipeline.run()
    assert result.counts["slow"].computed == 12
    assert sorted(CALLS) == list(range(12))  # displayed before, computed once by the run
    after = shows(pipeline.label)
    assert "'label': 12 rows" in after
    assert "#90" in after
    assert "#110" not in after
    assert "… 2 more rows" in after
    assert "slow (FunctionNode, 12 rows)" in after


def test_a_lazy_stream_is_computed_by_reading_it_not_by_showing_it() -> None:
    CALLS.clear()
    stream = slow.pod(numbers(3))
    before = shows(stream)
    assert CALLS == []
    assert not stream.is_computed
    assert "not computed" in before
    assert stream.as_table().column("slow").to_pylist() == [0, 10, 20]
    assert CALLS == [0, 1, 2]
    after = shows(stream)
    assert "'slow': 3 rows" in after
    assert "20" in after
    assert CALLS == [0, 1, 2]
    assert stream.result is not None
    assert stream.result.count(RowStatus.COMPUTED) == 3


def test_long_chains_are_cut_and_diamonds_named_once() -> None:
    source = numbers(2)
    stream = source
    for i in range(30):
        stream = stream.map_packets({}, label=f"step{i}")
    text = repr(stream)
    assert "step28 (MapPackets, not computed)" in text
    assert "step0 " not in text
    assert "…" in text
    diamond = source.join(source.map_packets({"x": "y"}, label="renamed"), label="both")
    text = repr(diamond)
    assert text.count("DictSource (DictSource, 2 rows)") == 1
    assert "DictSource (shown above)" in text
