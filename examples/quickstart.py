"""podline quickstart: sources, an operator chain and memoized function pods.

Run it twice with ``python examples/quickstart.py``: the first run computes every function
call and stores the results in the default store (``.podline/`` in the working directory, or
``$PODLINE_STORE``); the second run finds them all there and computes nothing.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

import podline
from podline import SKIP, function_pod
from podline.functions import FunctionPodStream, RowStatus

HERE = Path(__file__).parent
STORE = podline.default_store()


@function_pod("speed", version="v1", result_store=STORE)
def speed(reaction_ms: float | None, age: int) -> float:
    """Responses per second, corrected for age (a made-up model); no reaction: no row."""
    if reaction_ms is None:
        return SKIP
    return 1000.0 / reaction_ms * (1 + (age - 30) / 200)


@function_pod("grade", result_store=STORE)
def grade(speed: float, correct: bool | None) -> str:
    return "fast" if speed > 2.45 and correct else "slow"


def summary(name: str, stream: FunctionPodStream) -> str:
    result = stream.result
    assert result is not None, "read the stream first"
    counts = ", ".join(f"{s.value} {result.count(s)}" for s in RowStatus if result.count(s))
    return f"{name:<6} {counts}"


def main() -> None:
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

    joined = trials.join(subjects)  # one row per trial, with its subject's packet
    speeds = speed.pod(joined)  # extra packet columns (group, correct) are ignored
    grades = grade.pod(speeds.join(joined.select_packet_columns(["correct"])))
    fast = grades.filter(pl.col("grade") == "fast")
    batched = fast.batch(batch_size=2)  # rows grouped two by two into lists

    print(grades.as_table(sort_by_tags=True), end="\n\n")
    print("fast trials, in batches of two:")
    for tag, packet in batched:
        print(f"  {tag.as_dict()} -> {packet.as_dict()}")
    print()
    print(summary("speed", speeds))
    print(summary("grade", grades))
    print(f"store: {STORE.to_config()}")
    STORE.flush()


if __name__ == "__main__":
    main()
