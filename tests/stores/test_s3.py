"""A Delta store on object storage, against a real S3-compatible server on 127.0.0.1 (see
``tests/services.py``): pipelines run and re-run, a fresh process resumes, concurrent writers in
several processes lose and duplicate nothing, and a cached re-run costs a bounded number of
requests per table. The store contract itself runs against S3 in ``test_contract.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from tests.services import S3Server

from podline.stores import DeltaStore

from .conftest import PIPELINE, run_script, script_file

pytestmark = pytest.mark.service

WRITER = """
import json, sys
import pyarrow as pa
from podline.stores import DeltaStore

root, options, who, rounds = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
store = DeltaStore(root, storage_options=options, flush_seconds=None)
for r in range(rounds):
    # Half the ids every writer writes too (write-once must keep one), half its own.
    ids = [f"{r}-{i}" for i in range(5)] + [f"{who}{r}-{i}" for i in range(5)]
    store.write("t", pa.table({"__record_id": pa.array(ids, pa.large_string()), "who": [who] * 10}))
    store.flush()
store.close()
"""


def _pipeline(script: Path, root: str, server: S3Server, n: int) -> dict[str, list[int]]:
    config = DeltaStore(root, storage_options=server.storage_options()).to_config()
    process = run_script(script, config, str(n))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    result: dict[str, list[int]] = json.loads(out.splitlines()[-1])
    return result


def test_a_pipeline_resumes_in_fresh_processes_and_a_cached_run_costs_few_requests(
    tmp_path: Path, s3_server: S3Server
) -> None:
    script = script_file(tmp_path, "pipeline", PIPELINE)
    root = s3_server.new_root()
    key = root.removeprefix(f"s3://{s3_server.bucket}/")
    first = _pipeline(script, root, s3_server, 20)
    assert first == {"computed": [20, 20], "z": [i * i + 1 for i in range(20)]}
    # A fresh process with more input computes only the new rows, from what S3 holds.
    second = _pipeline(script, root, s3_server, 30)
    assert second == {"computed": [10, 10], "z": [i * i + 1 for i in range(30)]}
    before = s3_server.requests(key)
    third = _pipeline(script, root, s3_server, 30)
    assert third["computed"] == [0, 0]
    requests = s3_server.requests(key) - before
    tables = _tables(tmp_path, root, s3_server.storage_options())
    # A cached re-run opens and reads each table it needs and appends its run's status and
    # log rows: a small constant per table, not per row.
    print(f"cached re-run: {requests} requests, {len(tables)} tables")
    assert requests <= 25 * len(tables), (requests, sorted(tables))


def _tables(tmp_path: Path, root: str, options: dict[str, str]) -> list[str]:
    script = script_file(
        tmp_path,
        "tables",
        """
        import json, sys
        from podline.stores import DeltaStore
        store = DeltaStore(sys.argv[1], storage_options=json.loads(sys.argv[2]))
        print(json.dumps(["/".join(p) for p in store.list()]))
        """,
    )
    process = run_script(script, root, json.dumps(options))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    found: list[str] = json.loads(out)
    return found


def test_writers_in_several_processes_lose_and_duplicate_nothing(
    tmp_path: Path, s3_server: S3Server
) -> None:
    script = script_file(tmp_path, "writer", WRITER)
    root, rounds, writers = s3_server.new_root(), 12, "ABC"
    options = json.dumps(s3_server.storage_options())
    processes = [run_script(script, root, options, who, str(rounds)) for who in writers]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    # Read back through delta-rs: every id once, every writer's own ids all there.
    table = DeltaTable(f"{root}/t.delta", storage_options=s3_server.storage_options())
    ids = table.to_pyarrow_table().column("__record_id").to_pylist()
    expected = {f"{r}-{i}" for r in range(rounds) for i in range(5)} | {
        f"{who}{r}-{i}" for who in writers for r in range(rounds) for i in range(5)
    }
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


def test_without_conditional_writes_a_commit_fails_loudly(
    tmp_path: Path, s3_server: S3Server
) -> None:
    # Concurrent commits are safe because delta-rs creates each log entry only if absent
    # (conditional writes). Turned off, it refuses to commit rather than risk a lost one.
    from podline.errors import StoreError
    from podline.stores import DeltaStore

    options = {**s3_server.storage_options(), "aws_conditional_put": "disabled"}
    store = DeltaStore(s3_server.new_root(), storage_options=options, flush_seconds=None)
    store.write("t", _rows(["a"]))
    with pytest.raises(StoreError, match=r"'t'.*conditional put is disabled"):
        store.flush()


def _rows(ids: list[str]) -> object:
    import pyarrow as pa

    return pa.table({"__record_id": pa.array(ids, pa.large_string()), "v": list(range(len(ids)))})


def test_an_unreachable_store_is_an_error_not_an_empty_store() -> None:
    from podline.errors import StoreError
    from podline.stores import DeltaStore

    nobody = {  # port 9 (discard) has no server; few retries keep the test short
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "max_retries": "1",
        "retry_timeout": "1s",
    }
    store = DeltaStore("s3://podline-tests/nowhere", storage_options=nobody)
    with pytest.raises(StoreError, match="cannot list the tables in the store root"):
        store.list()
    # Asking for one table (what `podline status` and a run do first) too: a user test saw an
    # OSError's traceback, and the exit status of failed packets.
    with pytest.raises(StoreError, match="cannot tell whether 'pipelines/p/runs' exists at s3://"):
        store.exists(("pipelines", "p", "runs"))
    # Each on one line, saying what went wrong: delta-rs's first line is only "Kernel error ->
    # Generic S3 error", the cause is in the lines below it (a fault test saw only that).
    for call in (store.list, lambda: store.scan("t"), lambda: store.exists("t")):
        with pytest.raises(StoreError) as raised:
            call()
        message = str(raised.value)
        assert "Connection refused" in message, message
        assert "after 1 retries" in message, message
        assert "\n" not in message, message
        assert "\x1b" not in message, message


def test_a_missing_bucket_is_named_in_the_error(s3_server: S3Server) -> None:
    from podline.errors import StoreError

    store = DeltaStore("s3://no-such-bucket/root", storage_options=s3_server.storage_options())
    for call in (store.list, lambda: store.scan("t"), lambda: store.exists("t")):
        with pytest.raises(StoreError, match=r"404 Not Found: NoSuchBucket: The specified bucket"):
            call()


def test_a_delete_overtaken_by_another_writers_delete_is_made_again(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two users recomputing (or invalidating) the rows of a function they share, at once: on
    # S3 no file lock keeps their deletes apart, and delta-rs refused the second ("a
    # concurrent transaction deleted data this operation read"): a StoreError that ended
    # the user's run (user test 7). Here the other user's delete lands between this store
    # reading the table and merging.
    root, options = s3_server.new_root(), s3_server.storage_options()
    ids = [f"r{i}" for i in range(6)]
    first = DeltaStore(root, storage_options=options, flush_seconds=None)
    first.write("t", pa.table({"__record_id": pa.array(ids, pa.large_string()), "v": range(6)}))
    first.flush()
    other = DeltaStore(root, storage_options=options, flush_seconds=None)
    assert other.read("t", ["r0"]) is not None  # it knows the table
    backend = first._backend
    refresh = backend._refresh_for_write
    overtaken: list[int] = []

    def refresh_then_overtaken(state: Any, path: Any) -> Any:
        log = refresh(state, path)
        if not overtaken:
            overtaken.append(other.delete("t", ["r0", "r1", "r2"]))
        return log

    monkeypatch.setattr(backend, "_refresh_for_write", refresh_then_overtaken)
    assert first.delete("t", ["r1", "r2", "r3"]) == 1  # r3: the others were gone
    assert overtaken == [3]
    table = DeltaTable(f"{root}/t.delta", storage_options=options).to_pyarrow_table()
    assert sorted(table.column("__record_id").to_pylist()) == ["r4", "r5"]
    assert first.verify().ok
    first.close()
    other.close()
