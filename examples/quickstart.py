"""podline quickstart: build sources, look at streams, their provenance and their identities.

Run it with ``python examples/quickstart.py``. It reads a small CSV that ships with the
example, builds a few sources and prints what podline knows about every row.
"""

from __future__ import annotations

from pathlib import Path

import podline

HERE = Path(__file__).parent


def main() -> None:
    # Rows from Python: tag columns identify a row, the others are its packet (payload).
    subjects = podline.DictSource(
        [
            {"subject": "s01", "age": 31, "group": "control"},
            {"subject": "s02", "age": 27, "group": "treated"},
            {"subject": "s03", "age": 45, "group": "treated"},
        ],
        tag_columns=["subject"],
        source_id="subjects-2026",
    )
    print(subjects, end="\n\n")

    # Rows from a CSV file; the missing value in the last row makes those columns nullable.
    measurements = podline.CSVSource(
        HERE / "data" / "measurements.csv", tag_columns=["subject", "session"]
    )
    print(measurements, end="\n\n")

    # Iterating gives (Tag, Packet) pairs; provenance stays hidden until asked for.
    tag, packet = next(iter(measurements))
    print("first tag:        ", tag.as_dict())
    print("its system tags:  ", tag.system_tags())
    print("first packet:     ", packet.as_dict())
    print("its source info:  ", packet.source_info())
    print("its content hash: ", packet.content_hash(), end="\n\n")

    # The whole table, with every hidden column and a per-row content hash.
    table = measurements.as_table(all_info=True, sort_by_tags=True)
    print("all columns:", ", ".join(table.column_names), end="\n\n")

    # Identity: the content hash follows the data, the pipeline hash only the schema.
    print(
        f"subjects      content {subjects.content_hash().short()}  "
        f"pipeline {subjects.pipeline_hash().short()}"
    )
    print(
        f"measurements  content {measurements.content_hash().short()}  "
        f"pipeline {measurements.pipeline_hash().short()}"
    )


if __name__ == "__main__":
    main()
