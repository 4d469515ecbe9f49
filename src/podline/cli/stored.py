"""``podline show``, ``graph`` and ``plan``: a pipeline opened from the specification its runs
stored (``podline.open_pipeline``), in a fresh process (``plan`` also from a pipeline file).

``show`` and ``graph`` open it without the user's code (``code=False``): nothing of the
user's is imported or read, and every node's stored results stay readable. ``plan`` has to
know what the next run would see, so it opens the pipeline with its code, importing its
functions by module and qualified name (the working directory first on ``sys.path``, as
``python -m`` has it) and reading its sources again; where that is impossible it fails,
naming the node and why.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from podline.cli.loading import load_pipelines
from podline.cli.options import (
    json_option,
    open_store_option,
    pipeline_option,
    resolve_pipeline,
    store_option,
)
from podline.cli.output import emit_frame, emit_json
from podline.errors import NotFoundError, format_names
from podline.nodes import CacheMode, OperatorNode
from podline.pipeline import LoadedPipeline, Pipeline, open_pipeline
from podline.schema import is_file_type, python_type
from podline.stores.default import ENV_VAR

__all__ = ["COMMANDS", "open_stored"]

FORMATS = ("text", "mermaid", "dot", "svg")


def open_stored(store: str | None, pipeline: str | None, *, code: bool) -> LoadedPipeline:
    """The pipeline ``--pipeline`` names (or the store's only one) from ``--store``."""
    opened = open_store_option(store)
    name = resolve_pipeline(opened, pipeline)
    if code and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return open_pipeline(opened, name, code=code)


@click.command(
    epilog="""\b
Examples:
  podline show speed
  podline show speed --limit 0 --json > speed.json
  podline show trials --system-columns
"""
)
@click.argument("node")
@store_option
@pipeline_option
@click.option(
    "-l",
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show at most N rows (0: all).",
)
@click.option("--system-columns", is_flag=True, help="Include system tags and source info columns.")
@json_option
def show(
    *,
    node: str,
    store: str | None,
    pipeline: str | None,
    limit: int,
    system_columns: bool,
    as_json: bool,
) -> None:
    """Show a node's stored results as a table: tags, then packet columns."""
    import polars as pl

    loaded = open_stored(store, pipeline, code=False)
    nodes = loaded.nodes
    if node not in nodes:
        raise NotFoundError(
            f"pipeline {loaded.name!r} has no node {node!r}; its nodes are {format_names(nodes)}"
        )
    found = nodes[node]
    # An operator node in LOG mode has no output to read back, but history: every row its
    # runs logged, shown as such. (A loaded pipeline's nodes are podline's own classes.)
    operator = found if isinstance(found, OperatorNode) else None
    logged = operator is not None and operator.cache_mode is CacheMode.LOG
    shown = operator.stored_rows() if operator is not None and logged else found
    table = shown.as_table(all_info=system_columns, sort_by_tags=True)
    frame = pl.from_arrow(_paths_as_text(table))
    assert isinstance(frame, pl.DataFrame)
    total = frame.height
    if not total and not as_json and operator is not None:
        click.echo(f"(no rows: {_unstored(operator)})")
        return
    emit_frame(frame, as_json=as_json, limit=limit or None)
    if not as_json and limit and total > limit:
        click.echo(f"({limit} of {total} rows; --limit 0 shows all)")
    if logged and not as_json:
        click.echo(f"(the rows every run of operator node {node!r} logged: cache mode 'log')")


@click.command(
    epilog="""\b
Examples:
  podline graph
  podline graph --format mermaid > pipeline.mmd
  podline graph --output pipeline.svg
  podline graph --json | jq '.nodes[] | select(.counts.failed > 0) | .label'
"""
)
@store_option
@pipeline_option
@click.option(
    "-f",
    "--format",
    "form",
    type=click.Choice(FORMATS),
    default=None,
    help="text, Mermaid, Graphviz DOT or SVG (needs Graphviz) [default: from --output's "
    "suffix, else text].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (.txt, .mmd, .dot, .svg) instead of stdout.",
)
@click.option("--no-counts", is_flag=True, help="The structure only, without run counts.")
@json_option
def graph(
    *,
    store: str | None,
    pipeline: str | None,
    form: str | None,
    output: Path | None,
    no_counts: bool,
    as_json: bool,
) -> None:
    """Draw the pipeline's node graph, with the counts of its latest run."""
    drawing = open_stored(store, pipeline, code=False).show_graph(counts=not no_counts)
    if as_json:
        emit_json(
            {
                "title": drawing.title,
                "nodes": [
                    {
                        "label": node.label,
                        "kind": node.kind,
                        "detail": node.detail,
                        "upstreams": list(node.upstreams),
                        "state": drawing.state(node),
                        "counts": _counts(drawing.counts.get(node.label)),
                    }
                    for node in drawing.nodes
                ],
            }
        )
        return
    if output is not None:
        drawing.save(output, form)
        click.echo(f"wrote {output}", err=True)
        return
    renderers = {
        "text": drawing.to_text,
        "mermaid": drawing.to_mermaid,
        "dot": drawing.to_dot,
        "svg": drawing.to_svg,
    }
    click.echo(renderers[form or "text"](), nl=False)


def _counts(counts: Any) -> dict[str, int] | None:
    if counts is None:
        return None
    return {name: getattr(counts, name) for name in ("computed", "cached", "skipped", "failed")}


@click.command(
    epilog="""\b
Examples:
  podline plan pipeline.py                # before 'podline run pipeline.py'
  podline plan --recompute speed          # the store's pipeline, its code importable
  podline plan pipeline.py --json | jq '.[0].counts[] | select(.computed > 0) | .node'
"""
)
@click.argument("target", metavar="[FILE.py[:NAME]]", required=False)
@store_option
@pipeline_option
@click.option("--recompute", multiple=True, metavar="NODE", help="Plan a recompute of NODE.")
@click.option("--recompute-all", is_flag=True, help="Plan a recompute of every function node.")
@json_option
def plan(
    *,
    target: str | None,
    store: str | None,
    pipeline: str | None,
    recompute: tuple[str, ...],
    recompute_all: bool,
    as_json: bool,
) -> None:
    """Show what the next run would compute, serve from the store or skip, and why.

    Nothing is computed or written. With FILE.py[:NAME], the pipelines 'podline run' would
    run; without, the store's pipeline, whose functions are imported by module and
    qualified name (the working directory first) and whose sources are read again: run it
    where the pipeline's code is.
    """
    if recompute and recompute_all:
        raise click.UsageError("give --recompute NODE or --recompute-all, not both")
    if target is not None:
        if store is not None:
            os.environ[ENV_VAR] = store
        pipelines: list[Pipeline] = load_pipelines(target)
    else:
        pipelines = [open_stored(store, pipeline, code=True)]
    plans = [p.plan(recompute=True if recompute_all else list(recompute)) for p in pipelines]
    if as_json:
        emit_json(
            [
                {
                    "pipeline_uri": planned.pipeline_uri,
                    "counts": planned.counts().to_dicts(),
                    "reasons": planned.reasons().to_dicts(),
                }
                for planned in plans
            ]
        )
    else:
        click.echo("\n\n".join(str(planned) for planned in plans))


COMMANDS = (show, graph, plan)


def _paths_as_text(table: Any) -> Any:
    """``table`` with each column of ``Path`` values (stored as a struct of one path field)
    shown as its path, as a user wrote it, not as that struct."""
    import pyarrow.compute as pc

    for i, field in enumerate(table.schema):
        if is_file_type(python_type(field.type, field.name)):
            table = table.set_column(i, field.name, pc.struct_field(table.column(i), [0]))
    return table


def _unstored(node: OperatorNode) -> str:
    """Why an operator node shows no rows from the store, by its cache mode."""
    if node.cache_mode is CacheMode.OFF:
        return (
            f"operator node {node.label!r} stores no rows (cache mode 'off'): runs compute its "
            f"output and keep none of it; mode 'log' keeps every run's rows "
            f"(Pipeline(cache_modes={{{node.label!r}: 'log'}})), and its upstreams' results "
            "are in the store"
        )
    return f"operator node {node.label!r} (cache mode {node.cache_mode.value!r}) has no stored rows"
