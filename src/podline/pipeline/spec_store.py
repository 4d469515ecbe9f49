"""Specifications kept in the pipeline's store: ``pipelines/<name>/specs``.

A run stores its pipeline's specification under the id ``<snapshot>-<spec id>``: the 16 hex
digits of the pipeline URI, and ``spec_id`` (a hash of the text: labels or source paths may
differ under one URI), with the URI. A pipeline object remembers the graph whose
specification it stored, so its re-runs touch nothing; a fresh process looks the id up (a
read of one id, projected to the id column) and appends the row only if it is missing, so an
unchanged pipeline adds no table version, whatever the number of runs. The table grows by
one row per distinct specification (a source whose data grows makes one per run, as it makes
a new URI). Two processes storing a new specification at the same moment may both append
it; readers take one of the identical rows. A store that keeps ids unique (PostgreSQL)
refuses the second append instead: the id is then looked up again, and found, the run goes
on.

``stored_spec`` finds the specification to open: of the URI given (``name@<16 hex>``), or
else of the pipeline's latest run (from ``pipelines/<name>/runs``), or else the only one
stored. Several texts may share a URI (a function run from a script is ``__main__:f``,
imported from its module ``module:f``, under one identity): a run record names the one its
run stored (``SPEC_ID``), so the latest run's is opened; a URI given, or records written
before they named it, take the smallest id.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import PipelineError, StoreError, format_names
from podline.pipeline.spec import check_spec, spec_id, spec_text
from podline.stores import RECORD_ID, Store

__all__ = ["SPECS", "SPEC_ID", "record_spec", "stored_pipelines", "stored_spec"]

#: Where a pipeline's specifications are kept, below ``pipelines/<name>``.
SPECS = "specs"
#: The column of a run record naming the specification its run stored (``record_spec``).
SPEC_ID = "spec_id"
_RUNS = "runs"


def record_spec(store: Store, name: str, spec: dict[str, Any]) -> str:
    """Store ``spec`` unless it is stored already; returns its id."""
    key = f"{spec['uri'].rpartition('@')[2]}-{spec_id(spec)}"
    path = ("pipelines", name, SPECS)
    found = store.read(path, [key], columns=[RECORD_ID]) if store.exists(path) else None
    if found is None or found.num_rows == 0:
        table = pa.table(
            {
                RECORD_ID: pa.array([key], pa.large_string()),
                "uri": pa.array([spec["uri"]], pa.large_string()),
                "spec": pa.array([spec_text(spec)], pa.large_string()),
            }
        )
        # Appended: the id was just looked up, and a write's check would read every id.
        try:
            store.append(path, table)
        except StoreError:
            # Another process stored it since the lookup: a store that keeps ids unique
            # (PostgreSQL) refuses the append; the specification is stored all the same.
            again = store.read(path, [key], columns=[RECORD_ID])
            if again is None or again.num_rows == 0:
                raise
    return key


def stored_pipelines(store: Store) -> list[str]:
    """The names of the pipelines whose specifications ``store`` holds, sorted."""
    return sorted({path[1] for path in store.list(("pipelines",)) if path[2:] == (SPECS,)})


def stored_spec(store: Store, name: str) -> dict[str, Any]:
    """The stored specification ``name`` designates: ``<pipeline>`` (its latest run's) or
    ``<pipeline>@<16 hex>`` (that URI's); a ``PipelineError`` when there is none."""
    pipeline, _, snapshot = name.partition("@")
    if not pipeline or "/" in pipeline:
        raise PipelineError(f"{name!r} names no pipeline (expected 'name' or 'name@<hex>')")
    specs = store.scan(("pipelines", pipeline, SPECS))
    if specs is None or specs.num_rows == 0:
        known = stored_pipelines(store)
        if store.exists(("pipelines", pipeline, _RUNS)):
            # Runs recorded by a podline that stored no specifications (before 2026-12-06).
            raise PipelineError(
                f"the store {store.to_config()!r} holds runs of pipeline {pipeline!r} but no "
                "specification of it: an older podline recorded them, which stored none. "
                "Its status, logs and runs read as they are (podline status, logs, runs); "
                "to read its results, graph and lineage without its code, run the pipeline "
                "once with this podline, which stores the specification (results stored "
                "under this podline's hash scheme are served, not computed again)"
            )
        raise PipelineError(
            f"the store {store.to_config()!r} holds no specification of pipeline {pipeline!r} "
            f"(a run stores it); pipelines stored: {format_names(known) or 'none'}"
        )
    uri, key = (f"{pipeline}@{snapshot}", None) if snapshot else _latest_run(store, pipeline)
    uris = specs.column("uri").to_pylist()
    if uri is None and len(set(uris)) == 1:
        uri = uris[0]  # never run to the end, one version stored: that one
    if uri not in uris:
        raise PipelineError(
            f"pipeline {pipeline!r} has no stored specification of "
            f"{uri if uri is not None else 'a finished run'!r}; open one of "
            f"{format_names(uris)}"
        )
    chosen = specs.filter(pc.equal(specs.column("uri"), uri))
    named = chosen.filter(pc.equal(chosen.column(RECORD_ID), key)) if key else chosen
    # Several texts under one URI, none named (see the module docs): the smallest id.
    text = (named if named.num_rows else chosen).sort_by(RECORD_ID).column("spec")[0].as_py()
    return check_spec(json.loads(text), f"the stored specification of {name!r}")


def _latest_run(store: Store, pipeline: str) -> tuple[str | None, str | None]:
    """The URI of the pipeline's latest run, and the id of the specification it stored (None
    where its record does not name one)."""
    path = ("pipelines", pipeline, _RUNS)
    stored = store.read(path, [])  # no rows: what columns the records have
    if stored is None:
        return None, None
    named = SPEC_ID in stored.column_names
    runs = store.scan(path, columns=["pipeline_uri", "finished_at", *([SPEC_ID] if named else [])])
    if runs is None or runs.num_rows == 0:
        return None, None
    latest = pc.sort_indices(runs, [("finished_at", "descending")])[0].as_py()
    uri = runs.column("pipeline_uri")[latest].as_py()
    key = runs.column(SPEC_ID)[latest].as_py() if named else None
    return (str(uri) if uri is not None else None), key
