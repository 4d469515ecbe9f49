"""A CSV file's integers are read exactly or refused, never rounded to float64.

pyarrow infers a column of integers one of which does not fit int64 as float64 and rounds
them all to 53 bits: two ids 12345678901234567891 and 12345678901234567890 became the same
float, hashed and passed to functions as such (podline.sources.csv_types).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

import podline
from podline import CSVSource
from podline.errors import SourceError


@pytest.fixture(autouse=True)
def _no_build_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODLINE_CACHE_DIR", "off")


def _csv(tmp_path: Path, text: str, name: str = "ids.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "value",
    [
        "12345678901234567891",  # beyond int64, within uint64
        "18446744073709551615",  # uint64's maximum
        "9223372036854775808",  # int64's maximum + 1
        "-9223372036854775809",  # int64's minimum - 1
        "123456789012345678901234567890",  # beyond uint64
    ],
)
def test_integers_beyond_int64_are_refused_not_rounded(tmp_path: Path, value: str) -> None:
    path = _csv(tmp_path, f"k,id\n1,{value}\n2,5\n")
    with pytest.raises(SourceError) as caught:
        CSVSource(path, tag_columns="k")
    message = str(caught.value)
    assert f"CSV file {str(path)!r} exactly: column 'id'" in message
    assert repr(value) in message
    assert "column_types={'id': pyarrow.string()}" in message


def test_the_column_read_as_text_keeps_every_digit(tmp_path: Path) -> None:
    path = _csv(tmp_path, "k,id\n1,12345678901234567891\n2,12345678901234567890\n")
    options = pa_csv.ConvertOptions(column_types={"id": pa.string()})
    source = CSVSource(path, tag_columns="k", convert_options=options)
    assert source.as_table().column("id").to_pylist() == [
        "12345678901234567891",
        "12345678901234567890",
    ]


def test_a_type_the_user_gives_is_respected(tmp_path: Path) -> None:
    # Rounded floats, asked for: podline does not second-guess a given type.
    path = _csv(tmp_path, "k,id\n1,12345678901234567891\n")
    options = pa_csv.ConvertOptions(column_types={"id": pa.float64()})
    source = CSVSource(path, tag_columns="k", convert_options=options)
    assert source.as_table().column("id").to_pylist() == [1.2345678901234567e19]


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (["1.5", "12345678901234567891"], [1.5, 1.2345678901234567e19]),  # a float column
        (["1e3", "2"], [1000.0, 2.0]),
        (["+5", "-6", "+9007199254740992"], [5.0, -6.0, 9007199254740992.0]),  # exact
        (["inf", "2"], [float("inf"), 2.0]),
        (["NA", "2.5", ""], [None, 2.5, None]),
    ],
)
def test_floats_read_as_pyarrow_reads_them(
    tmp_path: Path, column: list[str], expected: list[float | None]
) -> None:
    rows = "".join(f"{i},{v}\n" for i, v in enumerate(column))
    source = CSVSource(_csv(tmp_path, "k,x\n" + rows), tag_columns="k")
    assert source.as_table().column("x").to_pylist() == expected


def test_a_plus_sign_on_an_integer_float64_rounds_is_refused(tmp_path: Path) -> None:
    # pyarrow's integer parser does not take "+": the column is float64 even within int64.
    path = _csv(tmp_path, "k,id\n1,+12345678901234567\n2,+1\n")
    with pytest.raises(SourceError, match=r"column 'id' .*'\+' sign.*'\+12345678901234567'"):
        CSVSource(path, tag_columns="k")


def test_integers_within_int64_stay_int64(tmp_path: Path) -> None:
    path = _csv(tmp_path, "k,id\n1,9223372036854775807\n2,-9223372036854775808\n")
    table = CSVSource(path, tag_columns="k").as_table()
    assert table.schema.field("id").type == pa.int64()
    assert table.column("id").to_pylist() == [9223372036854775807, -9223372036854775808]


def _later_block(tmp_path: Path, last: str) -> Path:
    # Small integers fill the first block (128 KiB here), the last row holds ``last``.
    rows = "".join(f"{i},{i * 2},x{i}\n" for i in range(20_000))
    return _csv(tmp_path, "a,b,s\n" + rows + f"5,{last},y\n", "later.csv")


@pytest.mark.parametrize("last", ["12345678901234567891", "1.5"])
def test_a_later_value_the_first_block_type_does_not_take_names_the_column(
    tmp_path: Path, last: str
) -> None:
    path = _later_block(tmp_path, last)
    read = pa_csv.ReadOptions(block_size=1 << 17)
    for convert in [None, pa_csv.ConvertOptions(include_columns=["s", "b"])]:
        with pytest.raises(SourceError) as caught:
            CSVSource(path, tag_columns="s", read_options=read, convert_options=convert)
        message = str(caught.value)
        held = rf"column 'b' holds '{re.escape(last)}', which its type \(int64\)"
        assert re.search(held, message)
        assert "first block (131072 bytes)" in message
        assert "column_types={'b': pyarrow.string()}" in message


def test_a_later_block_overflow_read_as_text(tmp_path: Path) -> None:
    path = _later_block(tmp_path, "12345678901234567891")
    options = pa_csv.ConvertOptions(column_types={"b": pa.string()})
    table = CSVSource(path, tag_columns="s", convert_options=options).as_table()
    assert table.column("b").to_pylist()[-1] == "12345678901234567891"


def test_a_pipeline_never_computes_with_rounded_ids(tmp_path: Path) -> None:
    path = _csv(tmp_path, "k,id\n1,12345678901234567891\n2,12345678901234567890\n")

    @podline.function_pod("text")
    def show(id: float) -> str:
        return repr(id)

    with pytest.raises(SourceError, match="column 'id'"):
        show.pod(CSVSource(path, tag_columns="k"))
