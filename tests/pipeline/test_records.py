"""Provenance records, cached-result lookups, passive reads of stored results, resumption."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import podline
from podline import function_pod
from podline.errors import PipelineError, StoreError
from podline.functions import ResultCache, RowStatus
from podline.nodes import FunctionNode, kinds
from podline.nodes.records import (
    INPUT_HASH,
    RESULT_ID,
    STATUS,
    KnownEntries,
    ProvenanceRecords,
)
from podline.nodes.streamed import StreamedEntries
from podline.pipeline import Pipeline
from podline.stores import RECORD_ID, Store

CALLS: list[int] = []


@function_pod("y", live_output=False)
def triple(a: int) -> int:
    CALLS.append(a)
    if a == 99:
        raise ValueError("no")
    return 3 * a


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def build(store: Store, values: list[int], source_id: str = "src") -> Pipeline:
    rows = [{"id": i, "a": v} for i, v in enumerate(values)]
    with Pipeline("records", store) as pipeline:
        triple.pod(podline.DictSource(rows, tag_columns=["id"], source_id=source_id))
    return pipeline


def node(pipeline: Pipeline) -> FunctionNode:
    found = pipeline.triple
    assert isinstance(found, FunctionNode)
    return found


def test_one_record_per_input_entry(store: Store) -> None:
    pipeline = build(store, [1, 2, 3])
    pipeline.run()
    pipeline.run()
    records = node(pipeline).store.scan("records")  # type: ignore[union-attr]
    assert records is not None
    assert records.num_rows == 3
    assert set(records.column(STATUS).to_pylist()) == {"computed"}
    assert records.column("id").to_pylist() == [0, 1, 2]
    assert {INPUT_HASH, RESULT_ID, RECORD_ID} <= set(records.column_names)


def test_entry_ids_follow_tags_system_tags_and_packets(store: Store) -> None:
    pipeline = build(store, [1, 2])
    stream = pipeline.DictSource.execute()  # a source node is labelled by its class
    ids = node(pipeline).entry_ids(stream).to_pylist()
    assert ids == node(pipeline).entry_ids(stream).to_pylist()
    assert len(set(ids)) == 2
    other = build(store, [1, 2], source_id="elsewhere")  # same values, other system tags
    assert node(other).entry_ids(other.DictSource.execute()).to_pylist() != ids


def test_failures_are_not_recorded(store: Store) -> None:
    pipeline = build(store, [1, 99])
    result = pipeline.run()
    assert result.counts["triple"].failed == 1
    records = node(pipeline).store.scan("records")  # type: ignore[union-attr]
    assert records is not None
    assert records.column("id").to_pylist() == [0]


def test_get_cached_results(store: Store) -> None:
    pipeline = build(store, [1, 2])
    function = node(pipeline)
    assert function.get_cached_results([]) == {}
    stream = pipeline.DictSource.execute()
    ids = function.entry_ids(stream).to_pylist()
    assert function.get_cached_results(ids) == {}
    pipeline.run()
    one = function.get_cached_results(ids[:1])
    assert list(one) == ids[:1]
    tag, packet = one[ids[0]]
    assert tag.as_dict() == {"id": 0}
    assert packet.as_dict() == {"y": 3}


def test_reads_serve_stored_results_without_computing(store: Store) -> None:
    build(store, [1, 2, 3]).run()
    CALLS.clear()
    fresh = build(store, [1, 2, 3])  # a new pipeline object, as in a new process
    assert fresh.triple.as_table().column("y").to_pylist() == [3, 6, 9]
    assert CALLS == []


def test_a_growing_source_adds_rows_not_tables_and_reads_serve_each_version(
    store: Store,
) -> None:
    versions = [[1, 2], [1, 2, 3], [1, 2, 3, 4], [5, 2]]  # growing, then rows replaced
    for values in versions:
        build(store, values).run()
    assert CALLS == [1, 2, 3, 4, 5]  # every row computed once, whatever the version
    tables = store.at("pipelines", "records", "nodes").list()
    assert len(tables) == 1  # one records table for every input version of the node
    for values in versions:  # a fresh pipeline reads its own version's rows only, in order
        fresh = build(store, values)
        assert fresh.triple.as_table().column("y").to_pylist() == [3 * v for v in values]
    assert CALLS == [1, 2, 3, 4, 5]


def test_reads_before_a_run_see_through_operators(store: Store) -> None:
    def pipeline_over(values: list[int]) -> Pipeline:
        left = podline.DictSource(
            [{"id": i, "a": v} for i, v in enumerate(values)], tag_columns=["id"]
        )
        right = podline.DictSource(
            [{"id": i, "b": i % 2} for i in range(len(values))], tag_columns=["id"]
        )
        joined = left.join(right).filter(pl.col("b") == 0).drop_packet_columns("b")
        with Pipeline("through", store) as pipeline:
            triple.pod(joined, label="triple")
        return pipeline

    pipeline_over([1, 2, 3, 4]).run()
    pipeline_over([1, 2, 3, 4, 6]).run()
    calls = list(CALLS)
    older, newer = pipeline_over([1, 2, 3, 4]), pipeline_over([1, 2, 3, 4, 6])
    assert older.triple.as_table().column("y").to_pylist() == [3, 9]
    assert newer.triple.as_table().column("y").to_pylist() == [3, 9, 18]
    assert calls == CALLS  # reading called nothing
    assert len(store.at("pipelines", "through", "nodes").list()) == 1


def test_a_changed_function_keeps_its_own_records(store: Store) -> None:
    build(store, [1, 2]).run()

    @function_pod("y", live_output=False)
    def triple(a: int) -> int:  # same name and version, other code: other results
        CALLS.append(-a)
        return 30 * a

    with Pipeline("records", store) as pipeline:
        triple.pod(
            podline.DictSource(
                [{"id": 0, "a": 1}, {"id": 1, "a": 2}], tag_columns=["id"], source_id="src"
            )
        )
    pipeline.run()
    assert CALLS == [1, 2, -1, -2]
    assert pipeline.triple.as_table().column("y").to_pylist() == [30, 60]
    assert build(store, [1, 2]).triple.as_table().column("y").to_pylist() == [3, 6]
    assert len(store.at("pipelines", "records", "nodes").list()) == 2


def test_cross_process_resume_computes_nothing(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import podline
        from podline import function_pod
        from podline.pipeline import Pipeline
        from podline.stores import DeltaStore

        calls = []

        @function_pod("y", live_output=False)
        def square(a: int) -> int:
            calls.append(a)
            return a * a

        rows = [{{"id": i, "a": i}} for i in range(50)]
        with Pipeline("resume", DeltaStore({str(tmp_path / "db")!r})) as pipeline:
            square.pod(podline.DictSource(rows, tag_columns=["id"]))
        result = pipeline.run()
        print(len(calls), result.counts["square"].cached, len(pipeline.square))
        """
    )
    path = tmp_path / "job.py"
    path.write_text(script)

    def run() -> list[int]:
        out = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, check=True
        ).stdout
        return [int(x) for x in out.split()]

    assert run() == [50, 0, 50]
    assert run() == [0, 50, 50]


def test_len_agrees_with_reads_of_stored_results(store: Store) -> None:
    build(store, [1, 2, 3]).run()
    fresh = build(store, [1, 2, 3])
    assert len(fresh.triple) == fresh.triple.as_table().num_rows == 3


def test_incremental_execution_matches_execute_and_reads_records_once(store: Store) -> None:
    values = [1, 2, 3, 2, 5, 6, 7]
    pipeline = build(store, values)
    whole = node(pipeline).execute(pipeline.DictSource.execute())
    assert sorted(CALLS) == [1, 2, 3, 5, 6, 7]  # the repeated argument ran once

    CALLS.clear()
    again = build(store, [*values, 8, 9])
    function, source = node(again), again.DictSource.execute()
    before = store.statistics()
    function.begin()
    table = source.as_table(system_tags=True, source_info=True)
    chunks = [
        function.execute_batch(podline.TableStream(table.slice(i, 3), ("id",)))
        for i in range(0, len(source), 3)
    ]
    output = function.finish()
    # The records, and the memo for the entries they miss, were read once, not per chunk;
    # the memo's ids once more, for the lookup of entries nothing knew of (the hashes that
    # rule them out are not kept by a run that looks nothing up).
    used = store.statistics() - before
    scanned = used.paths("scan")
    assert sorted(used.count("scan", path) for path in scanned) == [1, 2]
    assert {path[-1] for path in scanned if used.count("scan", path) == 1} == {"records"}
    # Only the memo is read by id, once, for the two entries nothing knew of.
    assert [used.count("read", path) for path in used.paths("read")] == [1]
    assert CALLS == [8, 9]  # only the new entries were computed
    assert [len(c) for c in chunks] == [3, 3, 3]
    assert output.as_table().slice(0, len(values)).to_pylist() == whole.as_table().to_pylist()
    assert output.as_table().column("y").to_pylist()[-2:] == [24, 27]
    assert function.counts[RowStatus.CACHED] == len(values)
    assert function.counts[RowStatus.COMPUTED] == 2


def test_a_node_reads_the_memo_once_however_many_batches_miss_its_records(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = list(range(40))
    build(store, values, source_id="first").run()
    CALLS.clear()
    # Another source, same values: no record matches (entry ids include the source), so
    # every batch goes to the pod, whose memo has every result.
    again = build(store, values, source_id="second")
    monkeypatch.setattr(kinds, "NODE_BATCH", 8)
    before = store.statistics()
    result = again.run()
    assert CALLS == []
    assert result.counts["triple"].cached == len(values)
    used = store.statistics() - before
    memo = [path for path in used.paths("scan") if "functions" in path]
    assert len(memo) == 1
    # Five batches, three reads of the memo: one to resolve the records (whose results it
    # does not keep), one of its ids when the first batch missed them, one of its results
    # since the misses may be among them (kept for the rest).
    assert used.count("scan", memo[0]) == 3
    assert not [path for path in used.paths("read") if "functions" in path]


def test_a_streamed_lookup_finds_what_a_find_finds_and_raises_what_its_reads_raise(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = build(store, [1, 2, 99])
    pipeline.run()
    records = node(pipeline).records
    assert records is not None
    source = next(iter(pipeline.nodes.values()))
    ids = node(pipeline).entry_ids(source.execute())
    direct, streamed = records.find(ids), StreamedEntries(records).find(ids)
    assert direct.found.tolist() == streamed.found.tolist() == [True, True, False]
    assert streamed.outputs.equals(direct.outputs)
    # Out of the records' order too (the source info is made for the rows served), read
    # whole (``known``) or streamed.
    shuffled = ids.take(pa.array([1, 2, 0]))
    for known in (records.known(), StreamedEntries(records)):
        for part in (shuffled.slice(0, 1), shuffled.slice(1)):
            served = known.find(part).outputs
            assert served.num_rows == 1
            assert served.equals(records.find(part).outputs)

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(type(records.store), "scan_batches", failing)
    pending = StreamedEntries(records)  # the read fails in the background thread ...
    with pytest.raises(OSError, match="disk on fire"):
        pending.find(ids)  # ... and is raised here, in the caller's


def test_a_chunk_outside_an_execution_is_refused(store: Store) -> None:
    # Without begin() there is nothing looked up: running the chunk would recompute rows the
    # records know, so it is an error rather than a silent cache miss.
    pipeline = build(store, [1, 2])
    function = node(pipeline)
    chunk = pipeline.DictSource.execute()
    with pytest.raises(PipelineError, match=r"node 'triple': execute_batch\(\) before begin\(\)"):
        function.execute_batch(chunk)
    function.begin()
    function.execute_batch(chunk)
    function.finish()
    with pytest.raises(PipelineError, match="before begin"):
        function.execute_batch(chunk)


@given(
    produced=st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8),
    skipped=st.lists(st.sampled_from("efghijk"), unique=True, max_size=4),
    asked=st.lists(st.lists(st.sampled_from("abcdefghijklm"), max_size=6), max_size=4),
    in_order=st.booleans(),
)
def test_known_entries_answer_every_chunk_as_a_lookup_would(
    produced: list[str], skipped: list[str], asked: list[list[str]], in_order: bool
) -> None:
    # Chunks in the records' own order take the fast path; any other order must give the
    # same answers (an output wins over a skip, unknown ids are not found).
    if in_order:
        asked = [produced[i : i + 3] for i in range(0, len(produced), 3)] + asked
    ids = pa.array(produced, pa.large_string())
    known = KnownEntries(
        ids, pa.table({"y": [f"out-{p}" for p in produced]}), pa.array(skipped, pa.large_string())
    )
    for chunk in asked:
        found = known.find(pa.array(chunk, pa.large_string()))
        assert found.found.tolist() == [c in produced or c in skipped for c in chunk]
        assert found.skipped.tolist() == [c in skipped and c not in produced for c in chunk]
        assert found.outputs.column("y").to_pylist() == [f"out-{c}" for c in chunk if c in produced]


def test_resolving_records_keeps_nothing_of_the_memo(store: Store) -> None:
    # A fully cached run looks nothing up in the memo after resolving its records: neither
    # the memo's rows nor its ids' hashes are kept. A lookup of calls it never held reads
    # the stored ids once (for their hashes), and the rows of none.
    pipeline = build(store, [1, 2, 3])
    pipeline.run()
    stored = node(pipeline).records
    assert stored is not None
    assert stored.memo is not None
    function = stored.function
    cache = ResultCache(stored.memo.store, function, preload=True)
    records = ProvenanceRecords(stored.store, function, None, memo=cache)
    known = records.known()
    assert len(known.produced) == 3
    assert cache._stored is None
    assert cache._seen is None
    before = cache.store.statistics()
    assert cache.lookup(pa.array(["pod3:" + "0" * 64], pa.large_string())).num_rows == 0
    assert cache._stored is None
    assert cache._seen is not None
    assert (cache.store.statistics() - before).count("scan", cache.path) == 1
    before = cache.store.statistics()
    assert cache.lookup(pa.array(["pod3:" + "1" * 64], pa.large_string())).num_rows == 0
    assert (cache.store.statistics() - before).paths("scan") == []
    # Calls it did see are looked up among every stored result, loaded once from then on.
    result_ids = stored.store.scan(("records",), columns=[RESULT_ID])
    assert result_ids is not None
    assert cache.lookup(result_ids.column(RESULT_ID)).num_rows == 3
    assert cache._stored is not None


def test_what_the_records_know_is_kept_packed(store: Store) -> None:
    # 32 bytes an id instead of 77: the entry ids and the result ids (for source info) of
    # a node's records are kept as their digests while a cached run serves them.
    pipeline = build(store, [1, 2, 3])
    pipeline.run()
    records = node(pipeline).records
    assert records is not None
    known = records.known()
    assert known.produced.type == pa.binary(32)
    assert known.calls is not None
    assert known.calls.type == pa.binary(32)
    fresh = build(store, [1, 2, 3])
    rows = fresh.DictSource.execute()
    found = known.find(node(fresh).entry_ids(rows))
    assert found.found.tolist() == [True, True, True]
    assert found.outputs.column("y").to_pylist() == [3, 6, 9]
    expected = records.find(node(fresh).entry_ids(rows)).outputs
    assert found.outputs.equals(expected)


def test_records_whose_ids_do_not_pack_are_known_as_strings(store: Store) -> None:
    # Records written with ids of another form (an older scheme, say): kept as they are,
    # and found exactly, the canonical spelling of the same digits being another id.
    pipeline = build(store, [1, 2])
    pipeline.run()
    stored = node(pipeline).records
    assert stored is not None
    table = stored.store.scan(("records",))
    assert table is not None
    legacy = pa.array([f"pod1:{i[5:]}" for i in table.column(RECORD_ID).to_pylist()])
    other = store.at("legacy")
    other.write(
        ("records",), table.set_column(table.schema.get_field_index(RECORD_ID), RECORD_ID, legacy)
    )
    records = ProvenanceRecords(other, stored.function, None, memo=stored.memo)
    known = records.known()
    assert pa.types.is_string(known.produced.type) or pa.types.is_large_string(known.produced.type)
    found = known.find(legacy)
    assert found.found.tolist() == [True, True]
    assert found.outputs.column("y").to_pylist() == [3, 6]
    assert not known.find(table.column(RECORD_ID).combine_chunks()).found.any()


def test_reading_results_back_reads_no_record_by_id(store: Store) -> None:
    # A fresh pipeline's read of a node's results finds its input's entries among what the
    # records know (their ids, read once) instead of reading the records of every entry.
    build(store, [1, 2, 3]).run()
    fresh = build(store, [1, 2, 3])
    before = store.statistics()
    table = fresh.triple.as_table()
    reads = (store.statistics() - before).paths("read")
    assert not [path for path in reads if path[-1] == "records"]
    assert table.column("y").to_pylist() == [3, 6, 9]
    assert CALLS == [1, 2, 3]  # the first run's calls only


def test_a_tag_finer_than_a_microsecond_is_refused_not_truncated(tmp_path: Path) -> None:
    # A Delta store kept node records in microseconds: two tags a nanosecond apart read back
    # (open_pipeline, podline show) as one and the same tag, without a word; PostgreSQL
    # refused them. Every store refuses them now, naming the column.
    def source(nanoseconds: list[int]) -> podline.ArrowTableSource:
        when = pa.array(nanoseconds, pa.timestamp("ns"))
        return podline.ArrowTableSource(pa.table({"when": when, "a": [1, 2]}), ["when"])

    with Pipeline("ns", podline.DeltaStore(tmp_path)) as pipeline:
        triple.pod(source([1704067200000000001, 1704067200000000002]))
    with (
        pytest.warns(podline.observability.ObservationWarning),  # its status rows too
        pytest.raises(StoreError, match=r"column 'when' .*2024-01-01T00:00:00\.000000001"),
    ):
        pipeline.run()
    # Whole microseconds are kept: the same instants read back.
    whole = [1704067200000001000, 1704067200000002000]
    with Pipeline("us", podline.DeltaStore(tmp_path)) as pipeline:
        triple.pod(source(whole))
    pipeline.run()
    stored = podline.open_pipeline(tmp_path, "us", code=False).triple.as_table(sort_by_tags=True)
    assert stored.column("when").cast(pa.timestamp("ns")).cast(pa.int64()).to_pylist() == whole
