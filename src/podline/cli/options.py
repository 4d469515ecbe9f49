"""The options the read commands share (``--store``, ``--pipeline``, ``--json``) and how they
resolve to a store and one of its pipelines.

``--store`` takes what ``podline.open_store`` does (a directory, ``s3://...``,
``postgresql://...``); without it, ``podline.default_store()`` (``$PODLINE_STORE``, else
``./.podline``). ``--pipeline`` may be left out when the store holds one pipeline only; it
may name one version, ``NAME@<16 hex>`` (a URI ``podline runs`` shows), when several users'
code ran under one name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from podline.errors import NotFoundError, StoreError, format_names
from podline.observability.columns import PIPELINES, RUNS_PATH
from podline.pipeline.spec_store import SPECS
from podline.stores import Store, default_store, open_store

__all__ = [
    "json_option",
    "open_store_option",
    "pipeline_names",
    "pipeline_option",
    "pipeline_versions",
    "resolve_pipeline",
    "split_uri",
    "store_option",
]

F = TypeVar("F", bound=Callable[..., Any])

store_option: Callable[[F], F] = click.option(
    "-s",
    "--store",
    metavar="STORE",
    default=None,
    help="The store: a directory or URL as podline.open_store takes "
    "[default: $PODLINE_STORE, else ./.podline].",
)
pipeline_option: Callable[[F], F] = click.option(
    "-p",
    "--pipeline",
    metavar="NAME",
    default=None,
    help="The pipeline to read [default: the store's only pipeline]; NAME@<16 hex> reads "
    "that version (a URI `podline runs` shows).",
)
json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (a list of row objects) for scripts."
)


def open_store_option(config: str | None) -> Store:
    """The store ``--store`` names (``default_store()`` without it)."""
    try:
        return default_store() if config is None else open_store(config)
    except StoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None


def pipeline_names(store: Store) -> list[str]:
    """The pipelines ``store`` holds records of, sorted."""
    return sorted({path[1] for path in store.list(PIPELINES) if len(path) > 1})


def split_uri(name: str) -> tuple[str, str | None]:
    """``NAME@<hex>`` as ``(NAME, "NAME@<hex>")``; a plain name as ``(name, None)``."""
    base, at, snapshot = name.partition("@")
    return (base, name) if at and snapshot else (name, None)


def resolve_pipeline(store: Store, name: str | None) -> str:
    """``name``, checked to be in ``store``; without one, the store's only pipeline.

    ``NAME@<hex>`` (one version of the pipeline) is checked by its name and returned whole;
    whether that version was stored is for whoever reads it to say."""
    names = pipeline_names(store)
    if not names:
        raise NotFoundError(
            f"store {store.to_config()!r} holds no pipelines (nothing was run on it); "
            "name another with --store or PODLINE_STORE"
        )
    if name is None:
        if len(names) > 1:
            raise click.UsageError(
                f"store {store.to_config()!r} holds {len(names)} pipelines, "
                f"{format_names(names)}: choose one with --pipeline NAME"
            )
        return names[0]
    base, uri = split_uri(name)
    if base not in names:
        raise NotFoundError(
            f"store {store.to_config()!r} holds no pipeline {base!r}; "
            f"its pipelines are {format_names(names)}"
        )
    if uri is not None:
        versions = pipeline_versions(store, base)
        if uri not in versions:
            raise NotFoundError(
                f"pipeline {base!r} has no stored version {uri!r}; its versions are "
                f"{format_names(versions) or 'none'} (podline runs shows which run was which)"
            )
    return name


def pipeline_versions(store: Store, name: str) -> list[str]:
    """The URIs (``<name>@<16 hex>``) of the versions of pipeline ``name`` its runs stored
    (a specification each, or a run record), sorted."""
    found: set[str] = set()
    for table, column in ((SPECS, "uri"), (RUNS_PATH, "pipeline_uri")):
        stored = store.scan((PIPELINES, name, table), columns=[column])
        if stored is not None:
            found.update(v for v in stored.column(column).to_pylist() if v is not None)
    return sorted(found)
