"""PacketFunction: schemas from annotations, output shaping, SKIP and None rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from podline.errors import FunctionDefinitionError, OutputValidationError
from podline.functions import SKIP, PacketFunction, SkipType
from podline.schema import Schema


def area(width: float, height: float = 1.0) -> float:
    return width * height


def stats(values: list[float]) -> tuple[float, float]:
    return min(values), max(values)


def test_schemas_come_from_annotations() -> None:
    pf = PacketFunction(area, output_keys="area")
    assert pf.input_schema == Schema({"width": float, "height": float}, optional={"height"})
    assert pf.input_schema.required == ("width",)
    assert pf.output_schema == Schema({"area": float})
    assert pf.name == "area"
    assert pf(2.0, 3.0) == 6.0


def test_several_output_keys_take_a_tuple() -> None:
    pf = PacketFunction(stats, output_keys=["low", "high"])
    assert pf.output_schema == Schema({"low": float, "high": float})
    assert pf.to_output((1.0, 2.0)) == {"low": 1.0, "high": 2.0}
    assert pf.to_output([1.0, 2.0]) == {"low": 1.0, "high": 2.0}
    with pytest.raises(OutputValidationError, match=r"stats must return a tuple or list of 2"):
        pf.to_output(1.0)


def test_list_return_annotation_types_every_key() -> None:
    def two(x: int) -> list[int]:
        return [x, x]

    pf = PacketFunction(two, output_keys=["a", "b"])
    assert pf.output_schema == Schema({"a": int, "b": int})


def test_return_annotation_must_match_the_number_of_keys() -> None:
    with pytest.raises(FunctionDefinitionError, match="3 output keys need"):
        PacketFunction(stats, output_keys=["a", "b", "c"])


@pytest.mark.parametrize("keys", ["__record_id", ["area", "__x"]])
def test_output_keys_may_not_use_the_reserved_prefix(keys: str | list[str]) -> None:
    # '__record_id' once failed only at run time, with a KeyError from inside the memo
    # (the memo table had two '__record_id' columns).
    with pytest.raises(FunctionDefinitionError, match=r"area: output key\(s\) '__"):
        PacketFunction(area, output_keys=keys, output_schema=dict.fromkeys(keys, float))


def test_missing_annotations_are_errors_naming_parameters() -> None:
    def f(x, y: int):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(FunctionDefinitionError, match=r"parameter\(s\) 'x' have no type"):
        PacketFunction(f, output_keys="out")

    def g(x: int):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(FunctionDefinitionError, match="no return annotation"):
        PacketFunction(g, output_keys="out")
    # Explicit schemas stand in for annotations.
    pf = PacketFunction(g, output_keys="out", output_schema={"out": int})
    assert pf.output_schema == Schema({"out": int})


def test_variadic_parameters_are_rejected() -> None:
    def f(*values: int) -> int:
        return sum(values)

    with pytest.raises(FunctionDefinitionError, match="'values'"):
        PacketFunction(f, output_keys="total")


def test_explicit_input_schema_keeps_defaults_optional() -> None:
    def f(x, scale=2):  # type: ignore[no-untyped-def]
        return x * scale

    pf = PacketFunction(
        f, output_keys="y", input_schema={"x": int, "scale": int}, output_schema={"y": int}
    )
    assert pf.input_schema.optional == {"scale"}


def test_lambdas_need_a_name() -> None:
    with pytest.raises(FunctionDefinitionError, match="name="):
        PacketFunction(lambda x: x, output_keys="y", output_schema={"y": int})


def test_skip_and_none() -> None:
    def maybe(x: int) -> int | None:
        return None if x < 0 else x

    pf = PacketFunction(maybe, output_keys="y")
    assert pf.to_output(None) == {"y": None}
    assert pf.to_output(SKIP) is SKIP
    strict = PacketFunction(area, output_keys="area")
    with pytest.raises(OutputValidationError, match=r"area returned None for 'area'"):
        strict.to_output(None)


def test_split_outputs_reports_each_bad_position() -> None:
    pf = PacketFunction(stats, output_keys=["low", "high"])
    columns, skipped, failures = pf.split_outputs([(1.0, 2.0), SKIP, "bad", (None, 1.0)])
    assert columns == {"low": [1.0, None, None, None], "high": [2.0, None, None, 1.0]}
    assert skipped == [False, True, False, False]
    assert sorted(failures) == [2, 3]
    assert "tuple or list" in str(failures[2])
    assert "'low'" in str(failures[3])


def test_skip_type_in_return_annotation_is_ignored() -> None:
    def f(x: int) -> int | SkipType:
        return SKIP if x else 1

    assert PacketFunction(f, output_keys="y").output_schema == Schema({"y": int})


@dataclass
class Point:
    x: float
    y: float


def test_structured_types() -> None:
    def centroid(points: list[Point], weights: dict[str, int]) -> Point:
        return points[0]

    pf = PacketFunction(centroid, output_keys="c", identity="version")
    assert pf.input_schema["points"] == list[Point]
    assert pf.output_schema["c"] is Point


def test_identity_covers_name_version_and_schemas() -> None:
    base = PacketFunction(area, output_keys="area", version="v1")
    assert (
        base.content_hash() == PacketFunction(area, output_keys="area", version="v1").content_hash()
    )
    assert (
        base.content_hash() != PacketFunction(area, output_keys="size", version="v1").content_hash()
    )
    assert (
        base.content_hash() != PacketFunction(area, output_keys="area", version="v2").content_hash()
    )
    renamed = PacketFunction(area, output_keys="area", version="v1", name="area2")
    assert base.content_hash() != renamed.content_hash()
    # A function holds no data: both identities coincide.
    assert base.pipeline_hash() == base.content_hash()


def test_invalid_options() -> None:
    with pytest.raises(FunctionDefinitionError, match="identity must be"):
        PacketFunction(area, output_keys="a", identity="nope")  # type: ignore[arg-type]
    with pytest.raises(FunctionDefinitionError, match="at least one key"):
        PacketFunction(area, output_keys=[])
    with pytest.raises(FunctionDefinitionError, match="repeat"):
        PacketFunction(stats, output_keys=["a", "a"])
