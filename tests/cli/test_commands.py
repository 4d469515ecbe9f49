"""The command line's rules, in this process (fast): which pipelines a file defines, and the
exit status and message of each kind of mistake. tests/cli/test_cli.py runs the real
command in fresh processes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from podline.cli.app import ExitCode, run_cli
from podline.pipeline.graph_render import dot_available

SEVERAL = """
import podline
from podline import Pipeline, function_pod


@function_pod("y")
def double(x: int) -> int:
    return 2 * x


numbers = podline.DictSource([{"k": 1, "x": 2}], tag_columns=["k"])
with podline.Pipeline("first") as first:
    double.pod(numbers)
same = first  # bound twice: one pipeline


def second() -> Pipeline:
    with Pipeline("second") as built:
        double.pod(numbers)
    return built


def not_a_pipeline() -> int:
    raise AssertionError("only functions annotated -> Pipeline are called")


if __name__ == "__main__":
    raise SystemExit("the main block does not run")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for pipeline files; what importing them changes is undone afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("PODLINE_STORE", raising=False)
    monkeypatch.setenv("CI", "1")  # no progress bars
    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def podline(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> tuple[str, str]:
    """Run ``podline *args`` here; check the exit status; (stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        run_cli(list(args))
    out, err = capsys.readouterr()
    assert exited.value.code == code, f"exit {exited.value.code}\n{out}\n{err}"
    return out, err


def pipelines_run(out: str) -> list[str]:
    return [run["pipeline_uri"].split("@")[0] for run in json.loads(out)]


def test_a_file_defines_its_pipeline_objects_and_annotated_functions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "several.py").write_text(SEVERAL)
    out, _ = podline(capsys, "run", "several.py", "--json")
    assert pipelines_run(out) == ["first", "second"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("second", "second"), ("first", "first"), ("same", "first")],
)
def test_name_picks_a_top_level_name_or_a_pipeline_name(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, expected: str
) -> None:
    (project / "several.py").write_text(SEVERAL)
    out, _ = podline(capsys, "run", f"several.py:{name}", "--json")
    assert pipelines_run(out) == [expected]


def test_mistakes_in_the_file_or_name(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "several.py").write_text(SEVERAL)
    _, err = podline(capsys, "run", "several.py:third", code=ExitCode.NOT_FOUND)
    assert err == (
        "podline: several.py has no pipeline 'third': no top-level name 'third' and no "
        "pipeline named so; its pipelines are 'first', 'second'\n"
    )
    _, err = podline(capsys, "run", "several.py:not_a_pipeline", code=ExitCode.ERROR)
    assert "not_a_pipeline() raised AssertionError" in err
    (project / "empty.py").write_text("x = 1\n")
    _, err = podline(capsys, "run", "empty.py", code=ExitCode.USAGE)
    assert "empty.py defines no pipeline" in err
    (project / "broken.py").write_text("import podline\n\nraise RuntimeError('bad file')\n")
    _, err = podline(capsys, "run", "broken.py", code=ExitCode.ERROR)
    assert 'broken.py", line 3, in <module>' in err  # the user's traceback
    assert err.endswith("podline: broken.py raised RuntimeError while imported: bad file\n")
    (project / "json.py").write_text(SEVERAL)  # would shadow the standard library's json
    _, err = podline(capsys, "run", "json.py", code=ExitCode.USAGE)
    assert "imported as module 'json', which is already imported" in err
    _, err = podline(capsys, "run", "missing.py", code=ExitCode.USAGE)
    assert "no file 'missing.py'" in err
    _, err = podline(capsys, "run", "several.py", "--recompute", "y", "--recompute-all", code=2)
    assert "give --recompute NODE or --recompute-all, not both" in err


def test_mistakes_in_what_to_read(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "several.py").write_text(SEVERAL)
    podline(capsys, "run", "several.py")
    _, err = podline(capsys, "status", code=ExitCode.USAGE)
    assert "holds 2 pipelines, 'first', 'second': choose one with --pipeline NAME" in err
    _, err = podline(capsys, "logs", "-p", "third", code=ExitCode.NOT_FOUND)
    assert "holds no pipeline 'third'; its pipelines are 'first', 'second'" in err
    _, err = podline(capsys, "status", "-p", "first", "--node", "z", code=ExitCode.NOT_FOUND)
    assert err == (
        "podline: pipeline 'first' recorded nothing of a node 'z'; its nodes are "
        "'DictSource', 'double'\n"
    )
    _, err = podline(capsys, "status", "-p", "first", "--state", "LOST", code=ExitCode.USAGE)
    assert err.startswith("podline: Invalid value for '--state'")
    assert err.endswith("; see podline status --help\n")
    assert err.count("\n") == 1  # one line, as every error (click alone adds a usage block)
    _, err = podline(capsys, "status", "-p", "first", "--tag", "k", code=ExitCode.USAGE)
    assert "'k' is not NAME=VALUE" in err
    _, err = podline(capsys, "runs", "--store", "bogus://x", code=ExitCode.USAGE)
    assert "Invalid value for --store: no store backend opens bogus://" in err
    out, _ = podline(capsys, "pipelines", "--json")
    assert json.loads(out) == ["first", "second"]
    # --limit 0 is every row, as for show (it gave none).
    out, _ = podline(capsys, "runs", "-p", "first", "--limit", "0", "--json")
    assert len(json.loads(out)) == 1
    out, _ = podline(capsys, "status", "-p", "second", "--tag", "k=1")
    header = [cell.strip() for cell in out.splitlines()[1].strip("│").split("┆")]
    assert header == ["node", "state", "k", "timestamp"]  # no system tags, no empty columns
    # "first" ran the same calls just before: results are shared across pipelines.
    assert out.splitlines()[3].split()[1:6:2] == ["double", "CACHED", "1"]
    out, _ = podline(capsys, "status", "-p", "second", "--tag", "k=2")
    assert out == "(no rows)\n"


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = podline(capsys, "run", "--help")
    assert "  Examples:\n    podline run pipeline.py\n" in out
    out, _ = podline(capsys, "--help")
    for command in ("run", "pipelines", "status", "logs", "runs"):
        assert f"\n  {command} " in out


MEASURED = """
from pathlib import Path

import podline
from podline import function_pod


@function_pod("half")
def halve(x: int) -> float:
    return x / 2


def build() -> podline.Pipeline:
    rows = podline.CSVSource(Path(__file__).parent / "rows.csv", tag_columns=["k"])
    with podline.Pipeline("measured") as pipeline:
        halve.pod(rows)
    return pipeline
"""


def test_show_graph_and_plan_of_a_stored_pipeline(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "rows.csv").write_text("k,x\n" + "".join(f"{k},{k * 10}\n" for k in range(30)))
    (project / "measured.py").write_text(MEASURED)
    planned, _ = podline(capsys, "plan", "measured.py", "--json")
    assert json.loads(planned)[0]["counts"][1] == {
        "node": "halve",
        "kind": "function",
        "rows": 30,
        "computed": 30,
        "cached": 0,
        "skipped": 0,
        "failed": 0,
        "pending": 0,
    }
    podline(capsys, "run", "measured.py")
    # From the store: the functions import from the working directory, the CSV reads again.
    out, _ = podline(capsys, "plan")
    assert out.splitlines()[3].split() == ["halve", "function", "30", "0", "30", "0", "0", "0"]

    _, err = podline(capsys, "show", "double", code=ExitCode.NOT_FOUND)
    assert (
        err
        == "podline: pipeline 'measured' has no node 'double'; its nodes are 'halve', 'rows.csv'\n"
    )

    out, _ = podline(capsys, "graph")
    assert out.splitlines()[2].split()[:5] == ["halve", "function", "halve", "v0", "<-"]
    out, _ = podline(capsys, "graph", "--format", "dot", "--no-counts")
    assert out.startswith("digraph")
    assert "computed" not in out
    _, err = podline(capsys, "graph", "-o", "graph.mmd")
    assert (project / "graph.mmd").read_text().startswith("flowchart TD\n")
    assert err == "wrote graph.mmd\n"


@pytest.mark.skipif(not dot_available(), reason="Graphviz's dot is not installed")
def test_graph_to_an_svg_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "several.py").write_text(SEVERAL)
    podline(capsys, "run", "several.py:first")
    podline(capsys, "graph", "--output", "first.svg")
    svg = ElementTree.parse(project / "first.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert "double" in "".join(svg.itertext())


def test_show_reads_stored_results_without_the_code(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "rows.csv").write_text("k,x\n" + "".join(f"{k},{k * 10}\n" for k in range(30)))
    (project / "measured.py").write_text(MEASURED)
    podline(capsys, "run", "measured.py")
    out, _ = podline(capsys, "show", "halve")
    assert out.splitlines()[-1] == "(20 of 30 rows; --limit 0 shows all)"
    out, _ = podline(capsys, "show", "halve", "--limit", "0", "--json")
    assert json.loads(out)[29] == {"k": 29, "half": 145.0}  # x = 290
    out, _ = podline(capsys, "show", "halve", "--system-columns", "--limit", "1", "--json")
    assert any(column.startswith("__tag:") for column in json.loads(out)[0])  # system tags


def test_trace_and_impact_from_the_store(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "rows.csv").write_text("k,x\n" + "".join(f"{k},{k * 10}\n" for k in range(5)))
    (project / "measured.py").write_text(MEASURED)
    podline(capsys, "run", "measured.py")
    (project / "measured.py").unlink()  # from the store alone
    out, _ = podline(capsys, "trace", "halve", "--tag", "k=3", "--json")
    steps = json.loads(out)
    assert [step["node"] for step in steps] == ["halve", "rows.csv"]
    assert steps[0]["status"] == "computed"
    assert steps[1]["record_id"] == "#3"  # the CSV's fourth row
    out, _ = podline(capsys, "trace", "halve", "--tag", "k=3")
    assert out.startswith("trace of halve, k=3")  # the tree, from the traced node down
    assert "#3" in out
    # Without the code the source's rows are not read: its records are named by id.
    _, err = podline(capsys, "impact", "rows.csv", "--tag", "k=3", code=ExitCode.ERROR)
    assert "name its records by record_id" in err
    out, _ = podline(capsys, "impact", "rows.csv", "--record-id", "#3", "--json")
    reached = [row for row in json.loads(out) if row["node"] == "halve"]
    assert [row["tags"] for row in reached] == ["k=3"]
    _, err = podline(capsys, "trace", "halve", "--tag", "k=three", code=ExitCode.USAGE)
    assert "'three' is not a value of tag 'k'" in err
    _, err = podline(capsys, "trace", "halve", "--tag", "z=1", code=ExitCode.USAGE)
    assert "has no tag 'z'" in err
    _, err = podline(capsys, "trace", "nothing", code=ExitCode.NOT_FOUND)
    assert "no node 'nothing'" in err


def test_trace_a_row_by_position_from_the_store(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--row i`` is the node's i-th stored row (here, one run of rows in tag order: the
    i-th row ``show`` lists), though nothing read the node before."""
    (project / "rows.csv").write_text("k,x\n" + "".join(f"{k},{k * 10}\n" for k in range(5)))
    (project / "measured.py").write_text(MEASURED)
    podline(capsys, "run", "measured.py")
    shown, _ = podline(capsys, "show", "halve", "--json")
    out, _ = podline(capsys, "trace", "halve", "--row", "2", "--json")
    steps = json.loads(out)
    assert (steps[0]["node"], steps[0]["status"]) == ("halve", "computed")
    assert steps[0]["tags"] == f"k={json.loads(shown)[2]['k']}"
    out, _ = podline(capsys, "trace", "halve", "--row", "0")
    assert out.splitlines()[0] == "trace of halve, row 0: 1 row(s)"
    _, err = podline(capsys, "trace", "halve", "--row", "5", code=ExitCode.ERROR)
    assert err == "podline: trace: node 'halve' has no row 5: a read of it gives 5 row(s)\n"


BATCHED = """
import podline
from podline import function_pod


@function_pod("y")
def double(x: int) -> int:
    if x == 2:
        raise ValueError("no 2")
    return 2 * x


@function_pod("total")
def total(y: list[int]) -> int:
    return sum(y)


rows = [{"k": k, "plot": f"p{k}", "x": k} for k in range(40)]
source = podline.DictSource(rows, tag_columns=["k", "plot"], source_id="s")
with podline.Pipeline("batched") as pipeline:
    total.pod(double.pod(source).batch(label="all"))
"""


def test_status_and_logs_of_scalar_and_batched_tags(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table's rows on one line each
    (project / "batched.py").write_text(BATCHED)
    podline(capsys, "run", "batched.py", code=ExitCode.FAILED)
    batch = [k for k in range(40) if k != 2]  # k == 2 failed: not in the batch
    out, err = podline(capsys, "status")
    assert err == ""
    rows = [[cell.strip() for cell in line.strip("│").split("┆")] for line in out.splitlines()]
    assert rows[1][:4] == ["node", "state", "k", "plot"]
    # The batch's lists shortened as polars prints lists; scalars as they are.
    assert rows[3][:4] == ["double", "FAILED", "2", "p2"]
    assert rows[-2][:4] == ["total", "SUCCESS", "[0, 1, … 39]", '["p0", "p1", … "p39"]']
    out, _ = podline(capsys, "status", "--json")
    status = json.loads(out)
    assert (status[0]["k"], status[-1]["k"]) == ("2", json.dumps(batch))  # whole, as text
    out, _ = podline(capsys, "status", "--tag", "k=1", "--all", "--json")
    assert [(row["node"], row["k"]) for row in json.loads(out)] == [("double", "1")]
    out, _ = podline(capsys, "status", "--node", "total", "--tag", f"k={batch}", "--json")
    assert [row["k"] for row in json.loads(out)] == [batch]  # one node: its list type
    out, _ = podline(capsys, "status", "--node", "total", "--tag", "k=1")
    assert out == "(no rows)\n"

    out, err = podline(capsys, "logs")
    assert err == ""
    assert "== double FAILED k='2' plot='p2'  (run " in out
    assert '== total SUCCESS k=[0, 1, … 39] plot=["p0", "p1", … "p39"]  (run ' in out
    out, _ = podline(capsys, "logs", "--node", "total")
    assert out.startswith('== total SUCCESS k=[0, 1, … 39] plot=["p0", "p1", … "p39"]  (run ')
    out, _ = podline(capsys, "logs", "--json")
    assert json.loads(out)[-1]["plot"] == json.dumps([f"p{k}" for k in batch])

    out, _ = podline(capsys, "impact", "DictSource", "--record-id", "#1")
    assert out.splitlines()[-1].endswith('(k=[0, 1, … 39], plot=["p0", "p1", … "p39"])')
    out, _ = podline(capsys, "impact", "DictSource", "--record-id", "#1", "--json")
    assert json.loads(out)[-1]["tags"] == f"k={batch}, plot={[f'p{k}' for k in batch]}"


CONCURRENT = """
import asyncio
import podline
from podline import function_pod

RUNNING = [0, 0]  # now, at most


@function_pod("answer")
async def call_service(x: int) -> int:
    RUNNING[0] += 1
    RUNNING[1] = max(RUNNING)
    await asyncio.sleep(0.05)
    RUNNING[0] -= 1
    return x


source = podline.DictSource([{"k": i, "x": i} for i in range(16)], tag_columns=["k"])
with podline.Pipeline("concurrent") as pipeline:
    call_service.pod(source)
pipeline.call_service.max_concurrency = 8
"""


def test_run_async_keeps_the_nodes_own_concurrency(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``podline run -o async`` runs as ``pipeline.run("async")`` does: without ``-e``, no
    executor overrides an async pod's ``max_concurrency`` (a user test saw one call at a
    time, 8x slower)."""
    (project / "service_calls.py").write_text(CONCURRENT)
    podline(capsys, "run", "service_calls.py", "-o", "async")
    assert sys.modules["service_calls"].RUNNING[1] == 8


def test_an_unreachable_store_is_one_line_and_exit_4(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An S3 store that cannot be reached is a store error (exit 4, one ``podline:`` line),
    not a traceback and the exit status of failed packets (a user test: a cron job could not
    tell an outage from bad data)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    nowhere = (  # port 9 (discard) has no server; one quick retry
        "s3://podline-tests/nowhere?AWS_ENDPOINT_URL=http://127.0.0.1:9&AWS_ALLOW_HTTP=true"
        "&AWS_REGION=us-east-1&max_retries=1&retry_timeout=1s"
    )
    for command in ("status", "runs"):
        out, err = podline(capsys, command, "--store", nowhere, code=ExitCode.ERROR)
        assert out == ""
        assert err.startswith("podline: cannot tell whether 'pipelines")
        assert err.count("\n") == 1, err


WRONG_TYPE = """
import podline
from podline import function_pod


@function_pod("y")
def half(x: int) -> int:
    return x / 2  # a float where the function promised an int


numbers = podline.DictSource([{"k": k, "x": k} for k in range(2)], tag_columns=["k"])
with podline.Pipeline("typed") as pipeline:
    half.pod(numbers)
"""


def test_logs_show_the_error_of_a_failed_call_that_has_no_traceback(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value of the wrong type fails its row once the call returned: no traceback, and
    the text of ``podline logs`` said nothing of the error (user test)."""
    (project / "typed.py").write_text(WRONG_TYPE)
    podline(capsys, "run", "typed.py", code=ExitCode.FAILED)
    out, _ = podline(capsys, "logs", "--state", "FAILED", "--tag", "k=1")
    lines = out.splitlines()
    assert lines[0].startswith("== half FAILED k=1  (run ")
    assert lines[1:] == [
        "-- error:",
        "   OutputValidationError: half returned, for output 'y' of type int: 0.5 (float) is a "
        "float, not an int (convert it with int() or round())",
    ]


def test_an_unknown_tag_names_the_user_tags_only(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message lists the tags one can type, not every column (system tags, run ids and
    hashes drowned them; user test)."""
    (project / "typed.py").write_text(WRONG_TYPE)
    podline(capsys, "run", "typed.py", code=ExitCode.FAILED)
    for command in ("status", "logs"):
        _, err = podline(capsys, command, "--tag", "kk=1", code=ExitCode.USAGE)
        assert err == (
            f"podline: Invalid value for --tag: no tag 'kk'; the tags are 'k'; see podline "
            f"{command} --help\n"
        )


FLOAT_TAGS = """
import podline
from podline import function_pod


@function_pod("y")
def scaled(x: float, rate: float) -> float:
    return x * rate


rates = [1e-05, 0.1, float("nan"), 1e20]
grid = podline.DictSource([{"rate": r, "x": 1.0} for r in rates], tag_columns=["rate"])
with podline.Pipeline("rates") as pipeline:
    scaled.pod(grid, inputs={"rate": "rate"})
"""


def test_a_float_tag_is_named_by_its_number(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tag rate=1e-05`` finds the rate polars shows as 1e-5, ``nan`` finds NaN, in
    status, logs and trace alike (user test: status compared the text and found nothing)."""
    (project / "rates.py").write_text(FLOAT_TAGS)
    podline(capsys, "run", "rates.py")
    for text, shown in [("1e-05", 1e-05), ("0.00001", 1e-05), ("1e+20", 1e20), ("0.1", 0.1)]:
        for command in ("status", "logs"):
            out, _ = podline(capsys, command, "--tag", f"rate={text}", "--json")
            assert [row["rate"] for row in json.loads(out)] == [shown], (command, text)
    out, _ = podline(capsys, "status", "--tag", "rate=nan", "--json")
    assert [row["rate"] for row in json.loads(out)] == ["nan"]
    out, _ = podline(capsys, "trace", "scaled", "--tag", "rate=nan")
    assert out.splitlines()[:2] == [
        "trace of scaled, rate=nan: 1 row(s)",
        "  scaled [function: scaled] computed  (rate=nan)  version v0, run "
        + out.splitlines()[1].rsplit("run ", 1)[1],
    ]
    out, _ = podline(capsys, "status", "--tag", "rate=fast", "--json")
    assert json.loads(out) == []


TWO_VERSIONS = """
import podline
from podline import function_pod


@function_pod("y")
def scaled(x: int) -> int:
    return x * {factor}


rows = podline.CSVSource("rows.csv", tag_columns=["k"])
with podline.Pipeline("shared") as shared:
    scaled.pod(rows)
"""


def test_one_version_of_a_pipeline_several_users_ran_under_one_name(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two users of one store run different code under one pipeline name (user test 7):
    # `runs` tells their runs apart by URI, and every read command takes NAME@<hex> to read
    # one version; the plain name reads the latest run's (show) or every run's (status).
    (project / "rows.csv").write_text("k,x\n1,10\n2,20\n")
    uris = []
    for factor in (2, 3):
        (project / f"user{factor}.py").write_text(TWO_VERSIONS.format(factor=factor))
        out, _ = podline(capsys, "run", f"user{factor}.py", "--json")
        uris.append(json.loads(out)[0]["pipeline_uri"])
    old, new = uris
    assert old != new
    monkeypatch.setenv("COLUMNS", "220")  # a text table as wide as a terminal's
    out, _ = podline(capsys, "runs")
    assert old in out
    assert new in out
    out, _ = podline(capsys, "runs", "-p", old, "--json")
    assert [run["pipeline_uri"] for run in json.loads(out)] == [old]
    out, _ = podline(capsys, "show", "scaled", "--json")
    assert json.loads(out) == [{"k": 1, "y": 30}, {"k": 2, "y": 60}]  # the latest run's
    out, _ = podline(capsys, "show", "scaled", "-p", old, "--json")
    assert json.loads(out) == [{"k": 1, "y": 20}, {"k": 2, "y": 40}]
    out, _ = podline(capsys, "trace", "scaled", "-p", old, "--tag", "k=1", "--json")
    assert json.loads(out)[0]["node"] == "scaled"
    out, _ = podline(capsys, "status", "-p", old, "--all", "--json")
    assert {row["pipeline_uri"] for row in json.loads(out)} == {old}
    out, _ = podline(capsys, "logs", "-p", new, "--json")
    assert {row["pipeline_uri"] for row in json.loads(out)} == {new}
    out, _ = podline(capsys, "status", "--all", "--json")
    assert {row["pipeline_uri"] for row in json.loads(out)} == {old, new}
    for command in (["show", "scaled"], ["status"], ["runs"]):
        missing = "shared@0123456789abcdef"
        _, err = podline(capsys, *command, "-p", missing, code=ExitCode.NOT_FOUND)
        assert f"pipeline 'shared' has no stored version '{missing}'; its versions are " in err
        assert old in err
        assert new in err
    _, err = podline(capsys, "runs", "-p", "other@0123456789abcdef", code=ExitCode.NOT_FOUND)
    assert "holds no pipeline 'other'" in err


def test_verify_checks_the_store_and_fails_on_a_damaged_table(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "several.py").write_text(SEVERAL)
    podline(capsys, "run", "several.py:first", "--store", "st")
    out, _ = podline(capsys, "verify", "--store", "st")
    assert out.startswith("8 tables: 0 problems, 0 leftovers")
    report = json.loads(podline(capsys, "verify", "--store", "st", "--json")[0])
    assert report["ok"] is True
    assert "pipelines/first/runs" in report["tables"]
    # A data file changed after its commit: podline refuses it, and the command says so.
    records = next((project / "st").glob("pipelines/first/nodes/*/*/*/records.delta"))
    with next(records.glob("*.parquet")).open("ab") as data:
        data.write(b"damage")
    out, _ = podline(capsys, "verify", "--store", "st", code=ExitCode.FAILED)
    assert "1 problems" in out
    assert "records: refused: StoreError: data file" in out
    report = json.loads(podline(capsys, "verify", "--store", "st", "--json", code=1)[0])
    assert report["ok"] is False
    assert report["problems"][0]["kind"] == "refused"
    assert report["problems"][0]["path"].endswith("/records")


def test_verify_refuses_a_store_that_cannot_check_its_tables(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = podline(capsys, "verify", "--store", "memory://", code=ExitCode.ERROR)
    assert "cannot be verified: only Delta stores" in err
