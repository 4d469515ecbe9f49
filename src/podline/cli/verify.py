"""``podline verify``: a store's tables read back two ways and compared, and what writers left
behind (``Verifiable``, ``DeltaStore.verify``), from the command line.

A store is meant to be checked while no one writes to it, after a crash, a full disk or a
copy, before trusting it again: a problem is a table whose reading by podline is not
delta-rs's (or that neither can read), and makes the command exit with status 1.
"""

from __future__ import annotations

from dataclasses import asdict

import click

from podline.cli.options import json_option, open_store_option, store_option
from podline.cli.output import emit_json
from podline.errors import PodlineError
from podline.stores import Finding, Verifiable

__all__ = ["COMMANDS"]


@click.command(
    epilog="""\b
Examples:
  podline verify
  podline verify --store s3://bucket/store
  podline verify --json | jq '.problems'
"""
)
@store_option
@json_option
@click.pass_context
def verify(context: click.Context, *, store: str | None, as_json: bool) -> None:
    """Check every table of the store: read by podline and by delta-rs, compared (version,
    files, schema, rows), and list files writers left behind. Exits 1 if a table is wrong."""
    opened = open_store_option(store)
    if not isinstance(opened, Verifiable):
        raise PodlineError(
            f"the store {opened.to_config()!r} cannot be verified: only Delta stores (local "
            "or object storage) check their tables; a PostgreSQL server keeps its own "
            "consistent"
        )
    report = opened.verify()
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "tables": ["/".join(path) for path in report.tables],
                "problems": [_finding(f) for f in report.problems],
                "leftovers": [_finding(f) for f in report.leftovers],
            }
        )
    else:
        click.echo(str(report))
        if report.leftovers and report.ok:
            click.echo(
                "(leftovers are harmless: no reader sees them; store.compact() deletes those "
                "older than the retention)"
            )
    if not report.ok:
        context.exit(1)


def _finding(finding: Finding) -> dict[str, str]:
    return {**asdict(finding), "path": "/".join(finding.path)}


COMMANDS = (verify,)
