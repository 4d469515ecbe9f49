"""``GeneratorSource``: rows yielded chunk by chunk by a function, never held whole, the same
identity as the whole table, and refused when a later call yields other rows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import podline
from podline import (
    ArrowTableSource,
    AsyncPipelineOrchestrator,
    GeneratorSource,
    ReadOnlyNodeError,
    SourceError,
    function_pod,
    open_pipeline,
)
from podline.nodes import kinds
from podline.pipeline import Pipeline
from podline.stores import Store

SCHEMA = pa.schema([("k", pa.int64()), ("x", pa.float64()), ("s", pa.string())])


def _rows(start: int, stop: int) -> pa.Table:
    k = list(range(start, stop))
    x = [None if i % 7 == 3 else i / 2 for i in k]
    return pa.table({"k": k, "x": x, "s": [f"r{i}" for i in k]}, schema=SCHEMA)


def _chunked(bounds: list[int]) -> Any:
    """A function yielding the rows ``0..bounds[-1]`` cut at ``bounds``."""

    def chunks() -> Iterator[pa.Table]:
        for start, stop in zip([0, *bounds], bounds, strict=False):
            yield _rows(start, stop)

    return chunks


def _same(a: podline.Source, b: podline.Source) -> None:
    assert a.content_hash() == b.content_hash()
    assert a.pipeline_hash() == b.pipeline_hash()
    assert a.source_id == b.source_id
    assert a.output_schema(system_tags=True) == b.output_schema(system_tags=True)
    assert a.as_table(all_info=True).equals(b.as_table(all_info=True))


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 40), max_size=6).map(sorted),
    record_ids=st.booleans(),
)
def test_same_identity_as_the_whole_table_for_any_chunking(
    cuts: list[int], record_ids: bool
) -> None:
    # Repeated cuts make empty chunks; no cut past 0 makes a source of zero rows.
    bounds = [*cuts, cuts[-1] if cuts else 0]
    options: dict[str, Any] = {"record_id_column": "s"} if record_ids else {}
    generated = GeneratorSource(_chunked(bounds), ["k"], **options)
    whole = ArrowTableSource(_rows(0, bounds[-1]), ["k"], **options)
    _same(generated, whole)
    assert len(generated) == bounds[-1]


def test_declared_schema_casts_every_chunk_and_types_an_empty_source() -> None:
    declared = pa.schema([("k", pa.int32()), ("x", pa.float32())])

    def chunks() -> Iterator[pa.Table]:
        yield pa.table({"x": [0.5, 1.5], "k": [1, 2]})  # columns in another order

    generated = GeneratorSource(chunks, ["k"], schema=declared)
    whole = ArrowTableSource(pa.table({"k": [1, 2], "x": [0.5, 1.5]}).cast(declared), ["k"])
    _same(generated, whole)
    empty = GeneratorSource(lambda: iter(()), ["k"], schema=declared, nullable="schema")
    _same(empty, ArrowTableSource(declared.empty_table(), ["k"], nullable="schema"))
    with pytest.raises(SourceError, match="yielded no chunk; give schema="):
        GeneratorSource(lambda: iter(()), ["k"])


def test_label_is_the_function_name() -> None:
    def readings() -> Iterator[pa.Table]:
        yield _rows(0, 3)

    assert GeneratorSource(readings, "k").label == "readings"
    assert GeneratorSource(lambda: iter([_rows(0, 3)]), "k").label == "GeneratorSource"


def test_a_generator_object_is_refused() -> None:
    gen = _chunked([5, 10])()
    with pytest.raises(SourceError, match=r"generator object.*only once.*not GeneratorSource"):
        GeneratorSource(gen, ["k"])
    # A function handing back one generator: its second call yields nothing.
    with pytest.raises(SourceError, match=r"0 chunk\(s\), where the first call gave 2"):
        GeneratorSource(lambda: gen, ["k"])
    with pytest.raises(SourceError, match="expects a function"):
        GeneratorSource([_rows(0, 3)], ["k"])  # type: ignore[arg-type]


def test_chunks_must_agree() -> None:
    def other_columns() -> Iterator[pa.Table]:
        yield _rows(0, 3)
        yield _rows(3, 6).drop_columns(["s"])

    with pytest.raises(SourceError, match="chunk 1 has columns 'k', 'x'; expected"):
        GeneratorSource(other_columns, ["k"])

    def other_types() -> Iterator[pa.Table]:
        yield pa.table({"k": [1], "x": [1]})
        yield pa.table({"k": [2], "x": [1.5]})

    with pytest.raises(SourceError, match=r"chunk 1 changes column types.*'x' is float, was int"):
        GeneratorSource(other_types, ["k"])

    def not_arrow() -> Iterator[Any]:
        yield [{"k": 1, "x": 2.0}]

    with pytest.raises(SourceError, match=r"chunk 0 is a list.*from_pylist"):
        GeneratorSource(not_arrow, ["k"])
    with pytest.raises(SourceError, match="returned one Table"):
        GeneratorSource(lambda: _rows(0, 3), ["k"])  # type: ignore[arg-type,return-value]


def test_a_failing_function_is_a_source_error_naming_the_source() -> None:
    def broken() -> Iterator[pa.Table]:
        yield _rows(0, 3)
        raise ConnectionError("the API went away")

    with pytest.raises(SourceError, match="broken: its function raised ConnectionError") as info:
        GeneratorSource(broken, ["k"])
    assert isinstance(info.value.__cause__, ConnectionError)


class _Drifting:
    """Yields rows 0..20 in chunks of 5 while ``drift`` is None; then chunk ``drift`` holds
    other values (or, with ``extra``, one more chunk follows)."""

    def __init__(self) -> None:
        self.drift: int | None = None
        self.extra = False
        self.given: list[int] = []  # the first row of every chunk yielded

    def __call__(self) -> Iterator[pa.Table]:
        for index, start in enumerate(range(0, 20, 5)):
            table = _rows(start, start + 5)
            if index == self.drift:
                table = table.set_column(1, "x", pa.array([9.0] * 5))
            self.given.append(start)
            yield table
        if self.extra:
            yield _rows(20, 21)


def test_rows_that_change_between_calls_are_refused_before_they_are_served() -> None:
    drifting = _Drifting()
    source = GeneratorSource(drifting, ["k"], label="sensor")
    drifting.drift = 2
    served: list[pa.Table] = []

    def read() -> None:
        served.extend(chunk.as_table() for chunk in source.iter_chunks(5))

    with pytest.raises(SourceError, match=r"sensor: .*changed between calls \(chunk 2 holds"):
        read()
    assert [t.column("k")[0].as_py() for t in served] == [0, 5]  # the rows the build hashed
    drifting.drift, drifting.extra = None, True
    with pytest.raises(SourceError, match="more than the 4 chunk"):
        source.as_table()


def test_an_unseeded_random_function_is_refused_at_build() -> None:
    import random

    def noisy() -> Iterator[pa.Table]:
        yield pa.table({"k": [1, 2], "x": [random.random(), 1.0]})

    with pytest.raises(SourceError, match="changed between calls"):
        GeneratorSource(noisy, ["k"])


def test_the_same_values_laid_out_otherwise_are_the_same_rows() -> None:
    calls = iter(range(100))

    def chunks() -> Iterator[pa.Table]:
        table = _rows(0, 10)
        # Second and later calls give the same values in two pieces (other IPC bytes).
        yield table if next(calls) == 0 else pa.concat_tables([table.slice(0, 4), table.slice(4)])

    source = GeneratorSource(chunks, ["k"])
    assert source.as_table().equals(ArrowTableSource(_rows(0, 10), ["k"]).as_table())


# --------------------------------------------------------------------------- pipelines

calls: list[str] = []


@function_pod("total", live_output=False)
def add_x(x: float | None, s: str) -> float:
    calls.append(s)
    return (x or 0.0) + len(s)


@function_pod("doubled", live_output=False)
def double(total: float) -> float:
    return 2 * total


def _generated() -> Iterator[pa.Table]:
    for start in range(0, 60, 7):
        yield _rows(start, min(60, start + 7))


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
@pytest.mark.parametrize("materialize", [True, False])
def test_a_pipeline_computes_then_serves_every_row_from_cache(
    store: Store, orchestrator: str, materialize: bool
) -> None:
    with Pipeline("generated", store, observe=False) as pipeline:
        double.pod(add_x.pod(GeneratorSource(_generated, ["k"], label="rows")))
    first = pipeline.run(orchestrator=orchestrator, materialize_results=materialize)
    assert (first.counts["add_x"].computed, first.counts["double"].rows) == (60, 60)
    expected = [2 * ((0.0 if k % 7 == 3 else k / 2) + len(f"r{k}")) for k in range(60)]
    got = pipeline.double.as_table().sort_by("k").column("doubled").to_pylist()
    assert got == expected
    again = pipeline.run(orchestrator=orchestrator, materialize_results=materialize)
    assert (again.counts["add_x"].cached, again.counts["double"].cached) == (60, 60)
    assert again.counts["add_x"].computed == again.counts["double"].computed == 0
    # Re-opened from the store, a source built from a function cannot be read again.
    loaded = open_pipeline(store, "generated")
    assert "GeneratorSource" in loaded.read_only["rows"]
    assert loaded.double.as_table().sort_by("k").column("doubled").to_pylist() == expected
    with pytest.raises(ReadOnlyNodeError, match="'rows': its source"):
        loaded.run()


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_a_run_over_changed_rows_fails_and_computes_nothing(
    store: Store, orchestrator: str
) -> None:
    drifting = _Drifting()
    with Pipeline("drift", store, observe=False) as pipeline:
        add_x.pod(GeneratorSource(drifting, ["k"], label="sensor"))
    pipeline.compile()
    drifting.drift = 0
    calls.clear()
    with pytest.raises(SourceError, match=r"sensor: .*changed between calls"):
        pipeline.run(orchestrator=orchestrator)
    assert calls == []
    drifting.drift = None  # the rows the build saw: nothing was stored, all is computed
    assert pipeline.run(orchestrator=orchestrator).counts["add_x"].computed == 20


# --------------------------------------------------------------------------- memory


def _sampled(chunks: int, rows: int) -> tuple[Any, list[int]]:
    """A function yielding ``chunks`` fresh chunks of ``rows`` rows (two int64 columns),
    allocated from a pool of their own, and the bytes of its chunks still alive (or of
    anything sharing their memory) each time it is about to make one."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    alive: list[int] = []

    def made() -> Iterator[pa.Table]:
        for index in range(chunks):
            alive.append(pool.bytes_allocated())
            numbers = range(index * rows, (index + 1) * rows)
            k = pa.array(numbers, pa.int64(), memory_pool=pool)
            yield pa.table({"k": k, "a": pa.array(numbers, pa.int64(), memory_pool=pool)})

    return made, alive


def test_the_rows_are_never_held_whole() -> None:
    chunks, rows = 50, 4_000
    function, alive = _sampled(chunks, rows)
    source = GeneratorSource(function, ["k"])
    assert sum(len(c) for c in source.iter_chunks(1_000)) == chunks * rows
    assert len(alive) == 4 * chunks  # three passes of the build and one read
    chunk = rows * 16
    assert max(alive) <= 2 * chunk, max(alive) / chunk


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_a_run_never_holds_the_source_whole(
    tmp_path: Path, orchestrator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, rows = 50, 4_000
    function, alive = _sampled(chunks, rows)

    @function_pod("b", live_output=False)
    def plus(a: int) -> int:
        return a + 1

    store = podline.DeltaStore(tmp_path / "store", flush_seconds=None)
    with Pipeline("held", store, observe=False) as pipeline:
        plus.pod(GeneratorSource(function, ["k"], source_id="fixed"))
    # Nodes read pieces of 1,000 rows here (16,384 by default), and async edges hold
    # ``buffer_size`` pieces (8 by default): two here.
    monkeypatch.setattr(kinds, "NODE_BATCH", 1_000)
    chosen: Any = "sync"
    if orchestrator == "async":
        chosen = AsyncPipelineOrchestrator(buffer_size=2, chunk_rows=1_000)
    result = pipeline.run(chosen, materialize_results=False)
    assert result.counts["plus"].computed == chunks * rows
    # While the run read the source, at most a few of its 50 chunks were alive at once.
    assert max(alive[-chunks:]) <= 8 * rows * 16, max(alive) / (rows * 16)
    store.close()


# --------------------------------------------------------------------------- cache key


def test_a_cache_key_skips_the_build_in_another_process_and_still_checks_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODLINE_CACHE_DIR", str(tmp_path / "cache"))
    script = (
        "import sys, pyarrow as pa, podline\n"
        "scale = float(sys.argv[1])\n"
        "def rows():\n"
        "    for s in range(0, 30, 10):\n"
        "        yield pa.table({'k': list(range(s, s + 10)), 'x': [scale * i for i in "
        "range(s, s + 10)]})\n"
        "calls = []\n"
        "def counted():\n"
        "    calls.append(1)\n"
        "    return rows()\n"
        "s = podline.GeneratorSource(counted, ['k'], cache_key='v1')\n"
        "built = len(calls)\n"
        "try:\n"
        "    n = len(s.as_table())\n"
        "except podline.SourceError as e:\n"
        "    n = 'refused' if 'changed between calls' in str(e) else str(e)\n"
        "print(built, s.content_hash(), n)\n"
    )

    def run(scale: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", script, scale],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        return out.stdout.split()

    first, second = run("1"), run("1")
    assert (first[0], first[2]) == ("3", "30")  # built: three passes
    assert second == ["0", first[1], "30"]  # from the cache: no pass, same identity
    changed = run("2")  # other rows under the same key: refused when read
    assert changed == ["0", first[1], "refused"]
