"""Memoization through a result store: hits, provenance of hits, skips, sharing, staleness."""

from __future__ import annotations

from typing import Any

import pytest

import podline
from podline.functions import SKIP, FunctionPod, PacketFunction, RowStatus, function_pod
from podline.stores import Store

from .conftest import ModuleMaker

CALLS: list[int] = []


def add_one(a: int) -> int:
    CALLS.append(a)
    return a + 1


def skip_odd(a: int) -> int:
    CALLS.append(a)
    return SKIP if a % 2 else a


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def numbers(n: int = 4, key: str = "a") -> podline.Source:
    return podline.DictSource([{"id": i, key: i} for i in range(n)], tag_columns=["id"])


def pod(fn: Any, store: Store, **options: Any) -> FunctionPod:
    return FunctionPod(
        PacketFunction(fn, output_keys="out"), result_store=store, live_output=False, **options
    )


def test_second_run_is_all_cached_with_original_provenance(store: Store) -> None:
    first = pod(add_one, store).execute(numbers())
    assert CALLS == [0, 1, 2, 3]
    assert first.status == [RowStatus.COMPUTED] * 4
    second = pod(add_one, store).execute(numbers())
    assert CALLS == [0, 1, 2, 3]  # nothing recomputed
    assert second.status == [RowStatus.CACHED] * 4
    info = "__source:out"
    assert (
        second.stream.as_table(source_info=True).column(info).to_pylist()
        == first.stream.as_table(source_info=True).column(info).to_pylist()
    )
    assert second.stream.as_table().equals(first.stream.as_table())


def test_only_missing_entries_are_computed(store: Store) -> None:
    pod(add_one, store).execute(numbers(2))
    CALLS.clear()
    result = pod(add_one, store).execute(numbers(4))
    assert CALLS == [2, 3]
    assert result.status == [RowStatus.CACHED] * 2 + [RowStatus.COMPUTED] * 2


def test_skips_are_remembered(store: Store) -> None:
    first = pod(skip_odd, store).execute(numbers())
    assert first.stream.as_table().column("out").to_pylist() == [0, 2]
    CALLS.clear()
    second = pod(skip_odd, store).execute(numbers())
    assert CALLS == []
    assert second.status == [RowStatus.CACHED, RowStatus.SKIPPED] * 2
    assert second.stream.as_table().column("out").to_pylist() == [0, 2]


def test_results_are_shared_across_column_names(store: Store) -> None:
    pod(add_one, store).execute(numbers(3))
    CALLS.clear()
    renamed = pod(add_one, store, inputs={"a": "x"}).execute(numbers(3, key="x"))
    assert CALLS == []
    assert renamed.status == [RowStatus.CACHED] * 3


def test_failures_are_not_stored(store: Store) -> None:
    def flaky(a: int) -> int:
        CALLS.append(a)
        if a == 1:
            raise ValueError("once")
        return a

    first = pod(flaky, store).execute(numbers(3), on_error="continue")
    assert first.status == [RowStatus.COMPUTED, RowStatus.FAILED, RowStatus.COMPUTED]
    CALLS.clear()
    second = pod(flaky, store).execute(numbers(3), on_error="continue")
    assert second.status == [RowStatus.CACHED, RowStatus.FAILED, RowStatus.CACHED]
    assert CALLS == [1]  # the failed call is retried, the others come from the store


def test_editing_the_code_never_reuses_stale_results(
    store: Store, make_module: ModuleMaker
) -> None:
    v1 = make_module("def f(a: int) -> int:\n    return a + 1\n")
    v2 = make_module("def f(a: int) -> int:\n    return a + 100\n")
    out1 = pod(v1.f, store).execute(numbers()).stream.as_table().column("out").to_pylist()
    out2 = pod(v2.f, store).execute(numbers()).stream.as_table().column("out").to_pylist()
    assert out1 == [1, 2, 3, 4]
    assert out2 == [100, 101, 102, 103]


def test_decorator_takes_a_result_store(store: Store) -> None:
    @function_pod("out", result_store=store, live_output=False)
    def twice(a: int) -> int:
        CALLS.append(a)
        return 2 * a

    twice.pod(numbers()).as_table()
    again = twice.pod(numbers())
    assert again.as_table().column("out").to_pylist() == [0, 2, 4, 6]
    assert again.result is not None
    assert again.result.count(RowStatus.CACHED) == 4
    assert CALLS == [0, 1, 2, 3]


def test_results_say_which_calls_ran_in_this_run(store: Store) -> None:
    first = pod(skip_odd, store).execute(numbers())
    assert first.computed.tolist() == [True] * 4
    second = pod(skip_odd, store).execute(numbers())
    assert second.computed.tolist() == [False] * 4


def signed_angle(y: float, x: float) -> float:
    import math

    CALLS.append(1)
    return math.atan2(y, x)


def test_signed_zero_inputs_get_their_own_results(store: Store) -> None:
    # atan2(0.0, -1.0) is pi and atan2(-0.0, -1.0) is -pi: a memo that folded -0.0 into 0.0
    # served pi for both.
    source = podline.DictSource(
        [{"id": 0, "y": 0.0, "x": -1.0}, {"id": 1, "y": -0.0, "x": -1.0}], tag_columns=["id"]
    )
    first = pod(signed_angle, store).execute(source)
    assert first.status == [RowStatus.COMPUTED, RowStatus.COMPUTED]
    again = pod(signed_angle, store).execute(source)
    assert again.status == [RowStatus.CACHED, RowStatus.CACHED]
    for result in (first, again):
        assert result.stream.as_table().column("out").to_pylist() == [
            3.141592653589793,
            -3.141592653589793,
        ]
    assert len(CALLS) == 2
