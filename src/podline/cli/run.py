"""``podline run FILE.py[:NAME]``: run the pipelines a file defines, with progress bars and
the run summary (the summary on stdout, bars and errors on stderr)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import click

from podline.cli.app import ExitCode
from podline.cli.loading import load_pipelines
from podline.cli.options import store_option
from podline.cli.output import emit_json
from podline.executors import Executor, ProcessExecutor, ThreadExecutor
from podline.pipeline import Pipeline
from podline.pipeline.orchestration import OrchestratorResult
from podline.stores.default import ENV_VAR

__all__ = ["run"]

EXECUTORS = ("local", "threads", "processes", "ray")


@click.command(
    epilog="""\b
Examples:
  podline run pipeline.py
  podline run pipeline.py:analysis --orchestrator async
  podline run pipeline.py -e processes -w 4 --error-policy fail_fast
  podline run pipeline.py --recompute speed --recompute grade
  podline run pipeline.py --store s3://bucket/podline --json > summary.json
"""
)
@click.argument("target", metavar="FILE.py[:NAME]")
@store_option
@click.option(
    "-o",
    "--orchestrator",
    type=click.Choice(["sync", "async"]),
    default="sync",
    show_default=True,
    help="sync: nodes one after another; async: every node at once over bounded channels.",
)
@click.option(
    "-e",
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="Where function calls run: in this process, a thread pool, a process pool, Ray.",
)
@click.option(
    "-w",
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Workers of the threads/processes/ray executor [default: the executor's own].",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster for '-e ray' ('auto', 'ray://head:10001'); none: a local one.",
)
@click.option(
    "--error-policy",
    type=click.Choice(["continue", "fail_fast"]),
    default="continue",
    show_default=True,
    help="continue: report failed packets and go on; fail_fast: stop at the first.",
)
@click.option(
    "--recompute",
    "recompute",
    multiple=True,
    metavar="NODE",
    help="Run every call of function node NODE again, replacing its stored results (repeatable).",
)
@click.option("--recompute-all", is_flag=True, help="Run every call of every function node again.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds each call may take."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars on stderr [default: when stderr is a terminal and not in CI].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summaries as JSON.")
def run(
    *,
    target: str,
    store: str | None,
    orchestrator: str,
    executor: str,
    workers: int | None,
    ray_address: str | None,
    error_policy: str,
    recompute: tuple[str, ...],
    recompute_all: bool,
    timeout: float | None,
    progress: bool | None,
    as_json: bool,
) -> int:
    """Run the pipelines a file defines and print their summaries.

    FILE.py's pipelines are its top-level Pipeline objects and its top-level functions
    annotated '-> Pipeline' (called with no arguments), in file order; the file is imported
    as a module, so its 'if __name__ == "__main__":' block does not run. ':NAME' picks one
    top-level name (a Pipeline, or a function returning one) or the pipeline named NAME.

    --store sets PODLINE_STORE while the file is imported: pipelines made without store=
    use it. Exit status 0 when every packet succeeded (or was cached or skipped), 1 when any
    failed.
    """
    if recompute and recompute_all:
        raise click.UsageError("give --recompute NODE or --recompute-all, not both")
    if store is not None:
        os.environ[ENV_VAR] = store
    results: list[OrchestratorResult] = []
    try:
        with (
            _stdout_to_stderr() if as_json else nullcontext(),
            _executor(executor, workers, ray_address) as chosen,
        ):
            pipelines = load_pipelines(target)
            for pipeline in pipelines:
                result = pipeline.run(
                    orchestrator,  # type: ignore[arg-type]  # click.Choice checked it
                    progress=progress,
                    executor=chosen,
                    error_policy=error_policy,  # type: ignore[arg-type]
                    timeout=timeout,
                    recompute=True if recompute_all else list(recompute),
                )
                if result.failure_logs:  # the same logs, as a command line reads them
                    result.failure_logs = _logs_command(pipeline, store, result.run_id)
                results.append(result)
                if not as_json:
                    click.echo(str(result))
    finally:
        # One JSON document on stdout whatever happens: the runs that returned (none, when
        # the first one raised); the error, if any, goes to stderr with its exit status.
        if as_json:
            emit_json([summary(result) for result in results])
    failed = any(c.failed for result in results for c in result.counts.values())
    return ExitCode.FAILED if failed else ExitCode.OK


def _logs_command(pipeline: Pipeline, store: str | None, run_id: str) -> str:
    where = f" --store {shlex.quote(store)}" if store is not None else ""
    return (
        f"podline logs{where} --pipeline {shlex.quote(pipeline.name)} --state FAILED "
        f"--run-id {run_id}"
    )


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what the pipeline file and its calls print to stderr, worker processes included
    (at the file descriptor), so stdout holds the JSON document alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def _executor(kind: str, workers: int | None, address: str | None) -> Iterator[Executor | None]:
    if kind == "local":
        # The run's own default, as ``python FILE.py`` runs it: a LocalExecutor given here
        # would win over the nodes' own settings (an async pod's concurrency: one call at a
        # time instead of many).
        yield None
    elif kind == "threads":
        yield ThreadExecutor(workers)
    elif kind == "processes":
        with ProcessExecutor(workers) as processes:
            yield processes
    else:
        from podline.executors.ray import RayExecutor

        with RayExecutor(address, max_workers=workers) as ray:
            yield ray


def summary(result: OrchestratorResult) -> dict[str, Any]:
    """A run's outcome as JSON-ready data: what ``str(result)`` shows, field by field."""
    return {
        "run_id": result.run_id,
        "pipeline_uri": result.pipeline_uri,
        "seconds": result.seconds,
        "failed": sum(c.failed for c in result.counts.values()),
        "nodes": {label: dataclasses.asdict(c) for label, c in result.counts.items()},
        "failure_logs": result.failure_logs or None,
    }
