"""Start-up: what a fresh process pays before and during a small, fully cached run.

1. Import time, in fresh interpreters, interleaved round by round: ``python -c pass``,
   ``import pyarrow`` (the floor: podline is built on it), ``import podline`` and importing
   the names a pipeline script uses. Wall and CPU time (the children's user + system time,
   steadier on a shared machine), min and median; bytecode is cached as in an installed
   package (this venv sets ``PYTHONDONTWRITEBYTECODE``; the children do not).
   Target: ``import podline`` at most 0.3 s.
2. The fixed cost of a run: ``source -> pod -> pod`` on 1,000 rows, Delta store, default
   observers, computed once, then re-run fully cached in fresh processes. Reports the time
   spent in ``run()`` and where it goes (spec storage, node lookups, cached results, the
   observers' end of the run, the run record with the commits of the run's end (it carries
   the fully cached nodes' status rows); table opens and commits inside those), against the
   same-run baseline of a fresh process that opens and reads the same tables with delta-rs
   (``deltalake``) and makes as many commits with ``write_deltalake``.
   Target: ``run()`` at most 10 ms.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import podline

_SRC = str(Path(podline.__file__).parent.parent)
_PIPELINE_IMPORT = "from podline import DeltaStore, DictSource, Pipeline, function_pod"
_IMPORTS = {
    "python -c pass": "pass",
    "import pyarrow": "import pyarrow",
    "import podline": "import podline",
    "pipeline names": _PIPELINE_IMPORT,
}

_JOB = textwrap.dedent(
    """
    import json, sys, time
    from podline import DeltaStore, DictSource, Pipeline, function_pod
    import timing

    @function_pod("y", version="v1")
    def double(x: int) -> int:
        return 2 * x

    @function_pod("z", version="v1")
    def inc(y: int) -> int:
        return y + 1

    source = DictSource([{"k": i, "x": i} for i in range(1000)], tag_columns=["k"])
    with Pipeline("startup", store=DeltaStore(sys.argv[1])) as pipeline:
        inc.pod(double.pod(source))
    pipeline.compile()
    parts = timing.instrument() if sys.argv[2] == "cached" else {}
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    result = pipeline.run()
    wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
    cached = sum(c.cached for c in result.counts.values())
    print(json.dumps({"wall": wall, "cpu": cpu, "cached": cached, "parts": parts}))
    """
)

# Wrappers counting the wall and CPU time of the parts of a run (benchmark-only
# instrumentation: these are internal names of this version of podline).
_TIMING = textwrap.dedent(
    """
    import functools, importlib, time

    PARTS = {
        "spec storage": ("podline.pipeline.pipeline", "Pipeline._store_spec"),
        "observer set-up": ("podline.pipeline.pipeline", "default_observer"),
        "node lookups": ("podline.nodes.kinds", "FunctionNode._lookup"),
        "cached results": ("podline.nodes.kinds", "FunctionNode._run_batch"),
        "observers' run end": ("podline.observability.batching", "BatchedObserver.on_run_end"),
        "run record, commits": ("podline.pipeline.pipeline", "Pipeline._record_run"),
        "  (table opens)": ("podline.stores.delta", "_DeltaBackend._open"),
        "  (commits)": ("podline.stores._delta_commit", "Committer._commit"),
        "  (checkpoints)": ("podline.stores._delta_local", "LocalLog._checkpoint_if_due"),
    }

    def instrument():
        totals = {}
        for part, (module, name) in PARTS.items():
            owner_name, _, method = name.rpartition(".")
            owner = importlib.import_module(module)
            owner = getattr(owner, owner_name) if owner_name else owner
            totals[part] = [0, 0, 0]
            setattr(owner, method, _timed(getattr(owner, method), totals[part]))
        return totals

    def _timed(function, total):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            wall, cpu = time.perf_counter_ns(), time.process_time_ns()
            try:
                return function(*args, **kwargs)
            finally:
                total[0] += time.perf_counter_ns() - wall
                total[1] += time.process_time_ns() - cpu
                total[2] += 1
        return timed
    """
)

_BASELINE = textwrap.dedent(
    """
    import json, sys, time
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    tables, scratch = json.loads(sys.argv[1]), sys.argv[2]
    row = pa.table({"id": ["x"], "n": [1]})
    wall, cpu = time.perf_counter_ns(), time.process_time_ns()
    for uri in tables:
        DeltaTable(uri).to_pyarrow_table()
    for _ in range(int(sys.argv[3])):
        write_deltalake(scratch, row, mode="append")
    wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu}))
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])
    return env


def _timed_child(args: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, its stdout) of one fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=_env(), cwd=cwd, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, done.stdout


def _span(values: list[float], scale: float = 1e3) -> str:
    return f"min {min(values) * scale:6.1f}  median {statistics.median(values) * scale:6.1f}"


def _imports(rounds: int) -> None:
    for code in _IMPORTS.values():  # writes the bytecode caches
        _timed_child(["-c", code])
    walls: dict[str, list[float]] = {label: [] for label in _IMPORTS}
    cpus: dict[str, list[float]] = {label: [] for label in _IMPORTS}
    for _ in range(rounds):
        for label, code in _IMPORTS.items():
            wall, cpu, _ = _timed_child(["-c", code])
            walls[label].append(wall)
            cpus[label].append(cpu)
    floor = min(walls["import pyarrow"])
    print(f"import time over {rounds} interleaved fresh interpreters (ms):")
    for label in _IMPORTS:
        ratio = min(walls[label]) / floor
        print(
            f"  {label:16s} wall {_span(walls[label])}   cpu {_span(cpus[label])}"
            f"   {ratio:4.2f}x import pyarrow"
        )
    best = min(walls["import podline"])
    print(f"  import podline target <= 300 ms: {'met' if best <= 0.3 else 'NOT met'}")


def _cached_runs(root: Path, rounds: int) -> None:
    (root / "job.py").write_text(_JOB)
    (root / "timing.py").write_text(_TIMING)
    store = root / "store"
    _timed_child(["job.py", str(store), "first"], cwd=root)
    # What a cached run opens: not the code table, nor the logs (cached packets log nothing),
    # nor the status tables (a fully cached node's row is in the run record), only their
    # markers.
    tables = sorted(str(p) for p in store.rglob("*.delta") if _opened_when_cached(p))
    runs, base = [], []
    for i in range(rounds):
        runs.append(json.loads(_timed_child(["job.py", str(store), "cached"], cwd=root)[2]))
        scratch = str(root / f"scratch{i}")
        commits = str(runs[-1]["parts"]["  (commits)"][2])
        out = _timed_child(["-c", _BASELINE, json.dumps(tables), scratch, commits], cwd=root)[2]
        base.append(json.loads(out))
    assert all(r["cached"] == 2000 for r in runs), "the re-runs were not fully cached"
    _report_runs(runs, base, len(tables))


def _opened_when_cached(table: Path) -> bool:
    if table.name == "code.delta" or "logs" in table.parts:
        return False
    return "status" not in table.parts or table.name == "listed.delta"


def _report_runs(runs: list[dict], base: list[dict], tables: int) -> None:
    commits = runs[0]["parts"]["  (commits)"][2]
    print(f"cached run() of source -> pod -> pod, 1,000 rows, fresh processes ({len(runs)}, ms):")
    print(f"  run()            wall {_span([r['wall'] for r in runs], 1e-6)}", end="")
    print(f"   cpu {_span([r['cpu'] for r in runs], 1e-6)}")
    mean = statistics.fmean(r["cpu"] for r in runs) / 1e6
    print(f"  run() cpu, mean (with the checkpoint every tenth run makes): {mean:.1f}")
    print(f"  baseline: delta-rs opens and reads the {tables} tables it touches, {commits} commits")
    print(f"                   wall {_span([b['wall'] for b in base], 1e-6)}", end="")
    print(f"   cpu {_span([b['cpu'] for b in base], 1e-6)}")
    ratio = min(r["wall"] for r in runs) / min(b["wall"] for b in base)
    print(f"  run() / baseline (min wall): {ratio:.2f}x")
    print("  where run() goes (median over the runs, and CPU's mean; calls per run):")
    for part in runs[0]["parts"]:
        wall = statistics.median(r["parts"][part][0] for r in runs) / 1e6
        cpu = statistics.median(r["parts"][part][1] for r in runs) / 1e6
        mean = statistics.fmean(r["parts"][part][1] for r in runs) / 1e6
        calls = runs[0]["parts"][part][2]
        print(f"    {part:20s} wall {wall:6.1f}  cpu {cpu:6.1f}  mean {mean:6.1f}  x{calls}")
    best = min(r["wall"] for r in runs) / 1e6
    print(f"  run() target <= 10 ms: {'met' if best <= 10 else 'NOT met'} (best {best:.1f} ms)")


def run(quick: bool = False) -> None:
    _imports(3 if quick else 20)
    with tempfile.TemporaryDirectory() as root:
        _cached_runs(Path(root), 2 if quick else 10)
