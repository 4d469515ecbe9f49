"""Integers of a CSV file are read exactly by ``CSVSource``, or refused; never rounded.

``pyarrow.csv`` infers each column's type from the file's first block (``block_size`` bytes,
1 MiB by default). A column of integers one of which does not fit ``int64``
(``12345678901234567891``, ``-9223372036854775809``) is inferred ``float64``: every value is
rounded to 53 bits and then hashed and passed to functions as that float, with no error.
podline's integers are ``int64`` (``hash_value`` and the stores refuse larger ones), so such a
column has no exact numeric type: ``check_integer_columns`` refuses it with a ``SourceError``
naming the file and the column and saying how to read it (as text). It looks at the columns
pyarrow inferred as ``float64`` and the user gave no type: their text in the first block is
read again (that block only, those columns only); a column whose values there are all
integers (digits, with a sign) and one beyond 2**53 in magnitude is refused. Integers that
float64 holds exactly stay as pyarrow reads them (``+5``: pyarrow's integer parser does not
take a ``+`` sign), and so does a column with a decimal point, an exponent or ``inf`` in its
first block: it holds floats, and an integer among them is a float like the others.

A value later in the file that the type fixed from the first block does not take (an integer
beyond ``int64`` after a first block of small ones) makes pyarrow fail; that failure becomes a
``SourceError`` naming the file, the column and the value, and saying how to give the column a
type (``conversion_error``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import SourceError

__all__ = ["check_integer_columns", "conversion_error"]

#: An integer literal (pyarrow trims the spaces around a value).
_INTEGER = r"^\s*[+-]?[0-9]+\s*$"
#: Every integer up to this magnitude is a float64 exactly.
_FLOAT_EXACT = 2**53


def check_integer_columns(
    path: str, options: Mapping[str, Any], schema: pa.Schema, label: str
) -> None:
    """Refuse a column pyarrow inferred (``schema``) as ``float64`` because of integers that
    float64 rounds (see the module docs)."""
    from pyarrow import csv

    given = _convert_options(options).column_types
    candidates = [f.name for f in schema if f.type == pa.float64() and f.name not in given]
    if not candidates:
        return
    # The first block again, those columns only, as text; nulls as pyarrow read them.
    check = copy.copy(_convert_options(options))
    check.column_types = {**given, **{name: pa.string() for name in candidates}}
    check.include_columns = candidates
    check.strings_can_be_null = True
    check.auto_dict_encode = False
    with csv.open_csv(path, **{**options, "convert_options": check}) as reader:
        try:
            first = reader.read_next_batch()
        except StopIteration:
            return
    for name in candidates:
        text = first.column(name).drop_null()
        if len(text) == 0 or not pc.all(pc.match_substring_regex(text, _INTEGER)).as_py():
            continue  # floats
        rounded = next((v for v in text.to_pylist() if abs(int(v)) > _FLOAT_EXACT), None)
        if rounded is not None:
            raise SourceError(
                f"{label}: cannot read CSV file {path!r} exactly: column {name!r} holds "
                f"integers that pyarrow reads as float64 (one is beyond int64, or they are "
                f"written with a '+' sign), and float64 rounds {rounded.strip()!r} and every "
                f"integer beyond 2**53. {_advice(name)}"
            )


def _advice(name: str) -> str:
    return (
        f"Read the column as text: CSVSource(..., convert_options=pyarrow.csv.ConvertOptions("
        f"column_types={{{name!r}: pyarrow.string()}})) (podline's integers are int64; "
        f"pyarrow.float64() there reads rounded floats, if that is what you want)"
    )


def _convert_options(options: Mapping[str, Any]) -> Any:
    from pyarrow import csv

    given = options.get("convert_options")
    return given if given is not None else csv.ConvertOptions()


#: pyarrow's message for a value its column's type does not take ("In CSV column #1: CSV
#: conversion error to int64: invalid value '12345678901234567891'").
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\S+): invalid value '(.*)'",
    re.DOTALL,
)


def conversion_error(
    path: str, options: Mapping[str, Any], error: pa.ArrowInvalid, label: str
) -> SourceError | None:
    """A ``SourceError`` for pyarrow's failure to convert a value to the type it fixed for
    its column from the first block, naming the column; None for other failures."""
    found = _CONVERSION.search(str(error))
    if found is None:
        return None
    index, type_, value = int(found[1]), found[2], found[3]
    name = _column_name(path, options, index)
    return SourceError(
        f"{label}: cannot read CSV file {path!r}: column {name!r} holds {value!r}, which "
        f"its type ({type_}) does not take: pyarrow fixes a column's type from the file's "
        f"first block ({_block_size(options)} bytes) and cannot read a later value that does "
        f"not fit it. Give the column a type that takes every value, e.g. as text: "
        f"CSVSource(..., convert_options=pyarrow.csv.ConvertOptions(column_types="
        f"{{{name!r}: pyarrow.string()}})), or pyarrow.float64() for decimals (podline's "
        f"integers are int64)"
    )


def _column_name(path: str, options: Mapping[str, Any], index: int) -> str:
    """The name of the file's ``index``-th column (pyarrow counts the file's columns, not
    the ones read), or ``#index`` when it cannot be told."""
    from pyarrow import csv

    read = options.get("read_options")
    if read is not None and read.column_names:
        names = list(read.column_names)
    else:
        try:
            rest = {k: v for k, v in options.items() if k != "convert_options"}
            with csv.open_csv(path, **rest) as reader:
                names = reader.schema.names
        except (OSError, pa.ArrowException):
            names = []
    return names[index] if index < len(names) else f"#{index}"


def _block_size(options: Mapping[str, Any]) -> int:
    from pyarrow import csv

    read = options.get("read_options")
    return int((read if read is not None else csv.ReadOptions()).block_size)
