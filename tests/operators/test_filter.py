"""Filter: Polars predicates and equality constraints, with a stable, hashable identity."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import warnings

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from podline import ArrowTableSource
from podline.errors import OperatorError
from podline.operators import Filter

from .helpers import assert_prediction_matches, full, source

ROWS = [
    {"id": 1, "x": 0.5, "g": "a"},
    {"id": 2, "x": None, "g": "b"},
    {"id": 3, "x": 2.5, "g": None},
    {"id": 4, "x": 3.5, "g": "a"},
]


@pytest.fixture
def stream():
    return source(ROWS, label="S")


def ids(stream) -> list[int]:
    return stream.as_table().column("id").to_pylist()


def test_predicates_and_constraints(stream) -> None:
    assert ids(Filter(pl.col("x") > 1)(stream)) == [3, 4]  # a null result drops the row
    assert ids(Filter(constraints={"g": "a"})(stream)) == [1, 4]
    assert ids(Filter(constraints={"g": None})(stream)) == [3]  # None matches nulls
    assert ids(Filter(pl.col("x") > 1, constraints={"g": "a"})(stream)) == [4]
    assert ids(Filter(pl.col("id") > 1, pl.col("id") < 4)(stream)) == [2, 3]
    assert ids(Filter()(stream)) == [1, 2, 3, 4]
    assert ids(Filter(pl.col("x").sum() > 100)(stream)) == []  # scalar predicates broadcast


def test_hidden_columns_ride_along(stream) -> None:
    kept = Filter(pl.col("g") == "a")(stream)
    table, original = full(kept), full(stream)
    assert table.schema == original.schema
    assert table.to_pylist() == [original.to_pylist()[i] for i in (0, 3)]
    assert_prediction_matches(kept)


def test_empty_input_gives_typed_empty_output() -> None:
    empty = source([], schema={"id": int, "x": float}, label="E")
    kept = Filter(pl.col("x") > 0, constraints={"id": 1})(empty)
    assert len(kept) == 0
    assert full(kept).schema == full(empty).schema
    assert_prediction_matches(kept)


# --------------------------------------------------------------------------- identity


def test_identity_is_the_serialized_expression() -> None:
    assert Filter(pl.col("x") > 1).content_hash() == Filter(pl.col("x") > 1).content_hash()
    assert Filter(pl.col("x") > 1).content_hash() != Filter(pl.col("x") > 2).content_hash()
    # Syntactic: an int literal and a float literal differ.
    assert Filter(pl.col("x") > 1).content_hash() != Filter(pl.col("x") > 1.0).content_hash()
    a, b = pl.col("x") > 1, pl.col("g") == "a"
    assert Filter(a, b).content_hash() == Filter(b, a).content_hash()
    with_constraint = Filter(a, constraints={"g": "a"})
    assert with_constraint.content_hash() != Filter(a).content_hash()
    assert with_constraint.content_hash() == Filter(a, constraints={"g": "a"}).content_hash()


def test_identity_is_stable_across_processes() -> None:
    code = (
        "import polars as pl; from podline.operators import Filter; "
        "print(Filter(pl.col('x').is_between(1, 4) & pl.col('g').is_in(['a', 'b']), "
        "constraints={'id': 3}).content_hash())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # the same podline, another hash seed
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    here = Filter(
        pl.col("x").is_between(1, 4) & pl.col("g").is_in(["a", "b"]), constraints={"id": 3}
    )
    assert out.stdout.strip() == str(here.content_hash())


def test_a_filtered_stream_hashes_without_computing(stream) -> None:
    kept = Filter(pl.col("x") > 1)(stream)
    assert kept.content_hash() != stream.content_hash()
    assert kept.pipeline_hash() == Filter(pl.col("x") > 1)(stream).pipeline_hash()
    assert not kept.is_computed


def test_python_functions_are_rejected() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # polars suggests a native expression for the lambda
        mapped = pl.col("x").map_elements(lambda v: v > 1, return_dtype=pl.Boolean)
    with pytest.raises(OperatorError, match=r"Filter: predicate .* calls a Python function"):
        Filter(mapped)
    folded = pl.fold(pl.lit(True), lambda acc, v: acc & v, [pl.col("x") > 1])
    with pytest.raises(OperatorError, match="calls a Python function"):
        Filter(folded)


# --------------------------------------------------------------------------- errors


def test_errors_at_application_time(stream) -> None:
    with pytest.raises(OperatorError) as info:
        Filter(pl.col("nope") > 1, constraints={"zz": 1, "id": 2})(stream)
    assert str(info.value) == (
        "Filter: unknown column(s) 'nope', 'zz'; tag and packet columns are 'g', 'id', 'x'"
    )
    with pytest.raises(OperatorError) as info:
        Filter(pl.col("x") + 1, pl.col("id") > 1)(stream)
    assert str(info.value) == (
        'Filter: predicates must give booleans: [(col("x")) + (dyn int: 1)] (Float64)'
    )
    with pytest.raises(OperatorError, match="Filter: predicates do not apply to this input"):
        Filter(pl.col("g").str.starts_with("a") & pl.col("x").str.starts_with("b"))(stream)


def test_errors_only_the_data_shows_are_operator_errors() -> None:
    zoned = ArrowTableSource(
        pa.table({"id": [1], "t": pa.array([dt.datetime(2024, 1, 2, tzinfo=dt.UTC)])}), ["id"]
    )
    late = Filter(pl.col("t") > dt.datetime(2024, 1, 1))(zoned)  # the schema says "datetime"
    with pytest.raises(OperatorError, match="Filter: predicates failed on the data"):
        late.as_table()


def test_bad_parameters() -> None:
    with pytest.raises(OperatorError, match="Filter: predicates must be polars expressions"):
        Filter("x > 1")  # type: ignore[arg-type]
    with pytest.raises(OperatorError, match="Filter: constraint values must be plain values"):
        Filter(constraints={"x": object()})


def test_repr() -> None:
    text = repr(Filter(pl.col("x") > 1, constraints={"g": "a"}))
    assert text.startswith('Filter([(col("x")) > (dyn int: 1)]')
    assert text.endswith("constraints={'g': 'a'})")


def test_preview_keeps_rows_whose_values_are_unknown_unless_a_tag_term_drops_them(
    stream,
) -> None:
    op = Filter(pl.col("x") > 1, pl.col("id") != 2, constraints={"g": "a"})
    assert ids(op.preview(stream)) == ids(op.process(stream)) == [4]
    unknown = np.array([True, True, True, False])
    # Rows 1 and 3 wait for their values: kept (the packet terms cannot decide); row 2 is
    # dropped by its tag; row 4 is known and kept by every term.
    assert ids(op.preview(stream, unknown=[unknown])) == [1, 3, 4]
    assert full(op.preview(stream, unknown=[unknown])).schema == full(op.process(stream)).schema
    assert ids(op.preview(stream, unknown=[np.zeros(4, dtype=bool)])) == [4]


@pytest.mark.parametrize(
    "term",
    [
        pl.all_horizontal(pl.col(["x"]).is_not_null()),
        pl.all_horizontal(pl.col(["id", "x"]) > 0),
        pl.all_horizontal(pl.all().is_not_null()),
        pl.all_horizontal(pl.col("^x$") > 0),
        pl.all_horizontal(pl.col(pl.Int64) > 0),
    ],
    ids=["list", "tag-and-packet-list", "all", "regex", "dtype"],
)
def test_preview_keeps_unknown_rows_for_terms_selecting_columns_without_names(
    stream, term: pl.Expr
) -> None:
    """A selection that names no column may read packets: it cannot decide a row whose
    values are unknown (``root_names`` lists none of its columns)."""
    unknown = np.array([True, True, True, False])
    known = [4] if 4 in ids(Filter(term).process(stream)) else []
    assert ids(Filter(term).preview(stream, unknown=[unknown])) == [1, 2, 3, *known]
