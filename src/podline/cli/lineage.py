"""``podline trace`` and ``podline impact``: a row's lineage back to its source records, and
a source record's reach forward (``Pipeline.trace`` / ``Pipeline.impact``), read from the
store alone: the pipeline is opened without the user's code (``podline.open_pipeline``).

Tag values come as ``NAME=VALUE`` text and are converted to the tag column's type, so
``--tag trial=4`` finds an integer tag 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
import pyarrow as pa

from podline.cli.options import json_option, pipeline_option, store_option
from podline.cli.output import emit_frame
from podline.cli.stored import open_stored
from podline.errors import NotFoundError, format_names
from podline.nodes import Node

__all__ = ["COMMANDS"]

tag_values_option = click.option(
    "-t",
    "--tag",
    "tags",
    multiple=True,
    metavar="NAME=VALUE",
    help="The rows whose tag NAME equals VALUE (repeatable).",
)


def _pairs(texts: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r} is not NAME=VALUE", param_hint="--tag")
        pairs.append((name, value))
    return pairs


def typed_tags(node: Node, texts: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` texts as the node's tag values, each converted to its column's type."""
    tag_schema, _ = node.output_schema()
    types = {field.name: field.type for field in tag_schema.to_arrow()}
    values: dict[str, Any] = {}
    for name, value in _pairs(texts):
        if name not in types:
            raise click.BadParameter(
                f"node {node.label!r} has no tag {name!r}; its tags are {format_names(types)}",
                param_hint="--tag",
            )
        try:
            values[name] = pa.scalar(value).cast(types[name]).as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise click.BadParameter(
                f"{value!r} is not a value of tag {name!r} ({types[name]}): {exc}",
                param_hint="--tag",
            ) from None
    return values


def _node(nodes: dict[str, Node], label: str, pipeline: str) -> Node:
    if label not in nodes:
        raise NotFoundError(
            f"pipeline {pipeline!r} has no node {label!r}; its nodes are {format_names(nodes)}"
        )
    return nodes[label]


@click.command(
    epilog="""\b
Examples:
  podline trace speed --tag trial=4
  podline trace speed --row 0 --json
"""
)
@click.argument("node")
@tag_values_option
@click.option("--row", type=click.IntRange(min=0), help="The node's ROW-th stored row instead.")
@store_option
@pipeline_option
@json_option
def trace(
    *,
    node: str,
    tags: tuple[str, ...],
    row: int | None,
    store: str | None,
    pipeline: str | None,
    as_json: bool,
) -> None:
    """Trace NODE's rows back to their source records: every step, its function and run."""
    loaded = open_stored(store, pipeline, code=False)
    values = typed_tags(_node(loaded.nodes, node, loaded.name), tags)
    found = loaded.trace(node, row=row, tags=values)
    if as_json:
        emit_frame(found.frame, as_json=True)
    else:
        click.echo(str(found))


@click.command(
    epilog="""\b
Examples:
  podline impact trials --record-id '#3'
  podline impact subjects --record-id cid --json
"""
)
@click.argument("source")
@click.option("--record-id", help="The source record with this record id.")
@tag_values_option
@store_option
@pipeline_option
@json_option
def impact(
    *,
    source: str,
    record_id: str | None,
    tags: tuple[str, ...],
    store: str | None,
    pipeline: str | None,
    as_json: bool,
) -> None:
    """Every stored row, in every node, that depends on a record of SOURCE (a source node's
    label or source id). The source's rows are not read without the pipeline's code, so
    name the record by --record-id (a trace shows record ids)."""
    loaded = open_stored(store, pipeline, code=False)
    # A source id (not a node label) names no schema: its tag values stay text.
    node = loaded.nodes.get(source)
    values = typed_tags(node, tags) if node is not None else dict(_pairs(tags))
    reached = loaded.impact(source, record_id=record_id, tags=values)
    if as_json:
        emit_frame(reached.frame, as_json=True)
    else:
        click.echo(str(reached))


COMMANDS = (trace, impact)
