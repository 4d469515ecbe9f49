"""Specifications kept in the pipeline's store, one small table per distinct specification.

A run stores its pipeline's specification at ``pipelines/<name>/specs/<snapshot>-<id>``,
where ``<snapshot>`` is the 16 hex digits of the pipeline URI and ``<id>`` is ``spec_id``
(a hash of the text: labels or source paths may differ under one URI), with the URI and when
it was stored. A table per specification makes "is it stored already?" a question of whether
a path exists, which costs no read of stored ids however many versions there are; a pipeline
object also remembers the graph whose specification it stored, so its re-runs ask nothing.
Tables grow with distinct pipeline versions, never with runs.

``stored_spec`` finds the specification to open: of the URI given (``name@<16 hex>``), or
else of the pipeline's latest run (from ``pipelines/<name>/runs``), or else the latest stored.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import PipelineError, format_names
from podline.pipeline.spec import check_spec, spec_id, spec_text
from podline.stores import RECORD_ID, Store

__all__ = ["SPECS", "record_spec", "stored_pipelines", "stored_spec"]

#: Where a pipeline's specifications are kept, below ``pipelines/<name>``.
SPECS = "specs"


def record_spec(store: Store, name: str, spec: dict[str, Any]) -> str:
    """Store ``spec`` unless it is stored already; returns its path's last segment."""
    key = f"{spec['uri'].rpartition('@')[2]}-{spec_id(spec)}"
    path = ("pipelines", name, SPECS, key)
    if not store.exists(path):
        table = pa.table(
            {
                RECORD_ID: pa.array([key], pa.large_string()),
                "uri": pa.array([spec["uri"]], pa.large_string()),
                "spec": pa.array([spec_text(spec)], pa.large_string()),
                "stored_at": pa.array([dt.datetime.now(dt.UTC)], pa.timestamp("us", tz="UTC")),
            }
        )
        store.write(path, table)  # (write, not append: two processes may get here at once)
    return key


def stored_pipelines(store: Store) -> list[str]:
    """The names of the pipelines whose specifications ``store`` holds, sorted."""
    return sorted({path[1] for path in store.list(("pipelines",)) if path[2:3] == (SPECS,)})


def stored_spec(store: Store, name: str) -> dict[str, Any]:
    """The stored specification ``name`` designates: ``<pipeline>`` (its latest) or
    ``<pipeline>@<16 hex>`` (that URI's); a ``PipelineError`` when there is none."""
    pipeline, _, snapshot = name.partition("@")
    if not pipeline or "/" in pipeline:
        raise PipelineError(f"{name!r} names no pipeline (expected 'name' or 'name@<hex>')")
    keys = [path[-1] for path in store.list(("pipelines", pipeline, SPECS))]
    if not keys:
        known = stored_pipelines(store)
        raise PipelineError(
            f"the store {store.to_config()!r} holds no specification of pipeline {pipeline!r} "
            f"(a run stores it); pipelines stored: {format_names(known) or 'none'}"
        )
    uri = f"{pipeline}@{snapshot}" if snapshot else _latest_run_uri(store, pipeline)
    wanted = uri.rpartition("@")[2] if uri is not None else ""
    chosen = [key for key in keys if key.partition("-")[0] == wanted]
    if not chosen and snapshot:
        uris = sorted({f"{pipeline}@{key.partition('-')[0]}" for key in keys})
        raise PipelineError(
            f"pipeline {pipeline!r} has no stored specification of {name!r}; stored: "
            f"{format_names(uris)}"
        )
    # Without a run of a stored specification (a run stopped before it was recorded),
    # the latest stored one.
    rows = [_spec_row(store, pipeline, key) for key in chosen or keys]
    text = max(rows, key=lambda row: (row["stored_at"], row[RECORD_ID]))["spec"]
    return check_spec(json.loads(text), f"the stored specification of {name!r}")


def _spec_row(store: Store, pipeline: str, key: str) -> dict[str, Any]:
    table = store.scan(("pipelines", pipeline, SPECS, key))
    if table is None or table.num_rows == 0:
        raise PipelineError(f"the stored specification {pipeline}/{SPECS}/{key} is empty")
    return dict(table.slice(0, 1).to_pylist()[0])


def _latest_run_uri(store: Store, pipeline: str) -> str | None:
    runs = store.scan(("pipelines", pipeline, "runs"), columns=["pipeline_uri", "finished_at"])
    if runs is None or runs.num_rows == 0:
        return None
    latest = pc.sort_indices(runs, [("finished_at", "descending")])[0].as_py()
    uri = runs.column("pipeline_uri")[latest].as_py()
    return str(uri) if uri is not None else None
