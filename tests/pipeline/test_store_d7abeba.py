"""A store written by podline at commit d7abeba (2026-11-28, hash scheme ``pod1``) after an
upgrade.

``data/store_d7abeba`` was written by that commit's code running ``build`` twice (a run that
computes, then a fully cached one):

    PYTHONPATH=<checkout of d7abeba>/src python -m tests.pipeline.test_store_d7abeba <dir>

Its status tables have no ``attempts`` or ``reason`` column (added 2026-12-06), one table
per node version; it holds no pipeline specification (stored by runs since 2026-12-06); its
hashes are ``pod1``. What docs/identity.md promises: everything stays readable, the first run
after the upgrade computes again once (the scheme changed), and says why.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore

OLD_STORE = Path(__file__).parent / "data" / "store_d7abeba"
# podline.cli and PipelineError in podline.errors came later: the tests import them where used,
# so that the commit writing the store (``_write``) imports this module.
ROWS = 5
NAME = "old study"


@function_pod("y", live_output=False)
def halve(x: float) -> float:
    print(f"halving {x}")
    if x < 0:
        raise ValueError(f"negative x {x}")
    return x / 2


def build(store: DeltaStore) -> Pipeline:
    rows = [{"site name": "Zürich", "n°": i, "x": float(i) - 1} for i in range(ROWS)]
    source = podline.DictSource(rows, tag_columns=["site name", "n°"], label="plots")
    with Pipeline(NAME, store) as pipeline:
        halve.pod(source)
    return pipeline


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(OLD_STORE, root)
    return root


def podline_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``podline *args`` here: (exit status, stdout and stderr)."""
    from podline.cli.app import run_cli

    with pytest.raises(SystemExit) as exited:
        run_cli(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out + err


def test_status_logs_and_runs_of_the_old_store_read(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DeltaStore(old_store) as store:
        pipeline = build(store)
        status = pipeline.status()
        # The columns every status frame has, null where the old rows have none.
        assert {"attempts", "reason", "error_type"} <= set(status.columns)
        assert status["attempts"].null_count() == status.height
        failed = status.filter(status["state"] == "FAILED")
        assert failed["n°"].to_list() == [0]
        assert failed["error_type"].to_list() == ["ValueError"]
        assert pipeline.logs(state="FAILED").height == 2  # each run called it again
        assert pipeline.runs()["run_id"].to_list() == ["cached", "first"]
    from podline.cli.app import ExitCode

    code, output = podline_cli(capsys, "status", "--store", str(old_store))
    assert code == ExitCode.OK, output
    assert "FAILED" in output
    failed_json = ("status", "--state", "FAILED", "--json", "--store", str(old_store))
    code, output = podline_cli(capsys, *failed_json)
    assert code == ExitCode.OK, output
    assert [row["error_message"] for row in json.loads(output)] == ["negative x -1.0"]


def test_reading_results_without_code_says_the_old_runs_stored_no_specification(
    old_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from podline.cli.app import ExitCode
    from podline.errors import PipelineError

    with DeltaStore(old_store) as store, pytest.raises(PipelineError) as raised:
        podline.pipeline.Pipeline.load(NAME, store)
    message = str(raised.value)
    assert "older podline" in message
    assert "run the pipeline once" in message
    assert "'old study'" in message  # the pipeline the store holds runs of, not 'none'
    code, output = podline_cli(capsys, "show", "halve", "--store", str(old_store))
    assert code == ExitCode.ERROR
    assert "older podline" in output


def test_plan_names_the_hash_scheme_change_and_the_run_computes_once(old_store: Path) -> None:
    with DeltaStore(old_store) as store:
        plan = build(store).plan()
        reasons = plan.reasons()
        halve_rows = reasons.filter(reasons["node"] == "halve").sort("reason")
        assert halve_rows["reason"].to_list() == ["earlier call failed", "hash scheme changed"]
        assert halve_rows["rows"].to_list() == [1, ROWS - 1]
        detail = halve_rows["detail"][1]
        assert "pod1" in detail
        assert podline.HASH_SCHEME in detail
        result = build(store).run()
        assert result.counts["halve"].computed == ROWS - 1
        assert result.counts["halve"].failed == 1
    with DeltaStore(old_store) as store:
        again = build(store).run()
        assert again.counts["halve"].computed == 0
        assert again.counts["halve"].cached == ROWS - 1
        values = sorted(build(store).nodes["halve"].as_table().column("y").to_pylist())
        assert values == [(i - 1) / 2 for i in range(1, ROWS)]
        status = build(store).status()
        assert set(status["state"]) == {"CACHED", "FAILED"}


def _write(root: Path) -> None:
    """Write the test store (see the module docs)."""
    for run_id in ("first", "cached"):
        store = DeltaStore(root)
        build(store).run(run_id=run_id)


if __name__ == "__main__":
    _write(Path(sys.argv[1]))
