"""What a function node passes to its function beyond packet columns: tag values mapped with
``inputs=``, and functions run for their side effects (no meaningful output)."""

from __future__ import annotations

from pathlib import Path

import pytest

import podline
from podline import function_pod
from podline.errors import FunctionDefinitionError
from podline.pipeline import Pipeline
from podline.stores import Store

CALLS: list[str] = []


@function_pod("greeting", live_output=False)
def greet(subject: str, word: str) -> str:
    CALLS.append(subject)
    return f"{word}, {subject}"


def subjects() -> podline.DictSource:
    rows = [{"subject": s, "word": "hello"} for s in ("ann", "bob")]
    return podline.DictSource(rows, tag_columns="subject")


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_a_mapped_tag_reaches_the_function_in_a_pipeline_and_is_memoized(
    store: Store, orchestrator: str
) -> None:
    CALLS.clear()
    with Pipeline("tags", store) as pipeline:
        greet.pod(subjects(), inputs={"subject": "subject"})
    first = pipeline.run(orchestrator)  # type: ignore[arg-type]
    assert first.counts["greet"].computed == 2
    assert pipeline.greet.as_table(sort_by_tags=True).column("greeting").to_pylist() == [
        "hello, ann",
        "hello, bob",
    ]
    second = pipeline.run(orchestrator)  # type: ignore[arg-type]
    assert second.counts["greet"].cached == 2
    assert sorted(CALLS) == ["ann", "bob"]


def test_a_pod_without_outputs_is_rejected_with_advice() -> None:
    with pytest.raises(
        FunctionDefinitionError, match="output_keys must name at least one key"
    ) as info:

        @function_pod(())
        def write(x: int) -> None:
            pass

    assert "return what it did" in str(info.value)
    assert "-> None with one key" in str(info.value)


@function_pod("done", live_output=False)
def append_to(folder: str, name: str, text: str) -> None:
    with (Path(folder) / f"{name}.txt").open("a") as handle:  # appending shows any repeat
        handle.write(text)


def test_a_side_effect_pod_annotated_none_runs_once_per_packet(
    store: Store, tmp_path: Path
) -> None:
    rows = [{"id": i, "folder": str(tmp_path), "name": f"f{i}", "text": "x"} for i in range(3)]
    with Pipeline("effects", store) as pipeline:
        append_to.pod(podline.DictSource(rows, tag_columns="id"))
    assert pipeline.run().counts["append_to"].computed == 3
    assert pipeline.run().counts["append_to"].cached == 3
    assert sorted(p.read_text() for p in tmp_path.glob("*.txt")) == ["x", "x", "x"]
    assert pipeline.append_to.as_table().column("done").null_count == 3
