"""podline quickstart: sources, then a join, two function pods, a batch and a filter.

Run it twice with ``python examples/quickstart.py``: the first run computes every function
call and stores the results in the default store (``.podline/`` in the working directory, or
``$PODLINE_STORE``); the second run finds them all there and computes nothing.
``podline run examples/quickstart.py`` does the same from the command line: it runs the
pipeline ``build()`` returns (docs/cli.md).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

import podline
from podline import SKIP, function_pod

HERE = Path(__file__).parent


@function_pod("speed", version="v1")
def speed(reaction_ms: float | None, age: int) -> float:
    """Responses per second, corrected for age (a made-up model); no reaction: no row."""
    if reaction_ms is None:
        return SKIP
    return 1000.0 / reaction_ms * (1 + (age - 30) / 200)


@function_pod("grade")
def grade(speed: float) -> str:
    return "fast" if speed > 2.45 else "slow"


def build() -> podline.Pipeline:
    """The pipeline (``podline run examples/quickstart.py`` finds it by its annotation)."""
    subjects = podline.DictSource(
        [
            {"subject": "s01", "age": 31, "group": "control"},
            {"subject": "s02", "age": 27, "group": "treated"},
            {"subject": "s03", "age": 45, "group": "treated"},
        ],
        tag_columns=["subject"],
        source_id="subjects-2026",
    )
    trials = podline.CSVSource(
        HERE / "data" / "measurements.csv", tag_columns=["subject", "session"]
    )

    with podline.Pipeline("quickstart") as pipeline:  # on podline.default_store()
        joined = trials.join(subjects, label="trials")  # each trial with its subject
        speeds = speed.pod(joined)  # extra packet columns (group, correct) are ignored
        grades = grade.pod(speeds)
        pairs = grades.batch(batch_size=2, label="pairs")  # rows two by two, into lists
        pairs.filter(pl.col("grade").list.contains("fast"), label="with_fast")
    return pipeline


def main() -> None:
    pipeline = build()
    result = pipeline.run()

    print(pipeline.grade.as_table(sort_by_tags=True), end="\n\n")
    print("pairs of trials with a fast one:")
    for tag, packet in pipeline.with_fast:
        print(f"  {tag.as_dict()} -> {packet.as_dict()}")
    print()
    print(result)  # per node: computed, cached, skipped, failed, rows
    print(f"store: {pipeline.store.to_config()}")


if __name__ == "__main__":
    main()
