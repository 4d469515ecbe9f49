"""Observability: what a run records about every packet, and reading it back.

* ``StatusObserver(store)``: every packet's state transitions (RUNNING, then SUCCESS, CACHED,
  SKIPPED or FAILED), with run, node and tag columns (system tags included);
* ``LoggingObserver(store, log_cached=False)``: every executed packet's captured stdout,
  stderr, logging records, traceback, success and duration;
* ``inspect(store, pipeline_name)``: a reader of a pipeline's status, logs and run history as
  polars DataFrames, in any process, on any store backend;
* ``ProgressObserver`` / ``progress_enabled``: a progress bar per function node;
  ``OpenTelemetryObserver``: traces (the ``podline[otel]`` extra);
* ``default_observer(store, pipeline_name)``: the observer ``Pipeline.run`` uses when none is
  given (status and logs under ``pipelines/<name>/status`` and ``pipelines/<name>/logs``, and
  progress bars when ``progress_enabled()``: a terminal or Jupyter, not CI or a pipe).

Observers buffer rows and write them in batches; a failure to write warns with an
``ObservationWarning`` and never breaks the run. See ``docs/observability.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podline.errors import ObservabilityError
from podline.lazy import lazy_export
from podline.nodes.observers import CompositeObserver, ObserverProtocol
from podline.observability.batching import ObservationWarning
from podline.observability.carried import CarriedRows
from podline.observability.columns import LOGS_SCOPE, PIPELINES, STATUS_SCOPE, State
from podline.observability.logs import LoggingObserver
from podline.observability.otel import MissingDependencyError, OpenTelemetryObserver
from podline.observability.progress import ProgressObserver, progress_enabled
from podline.observability.status import StatusObserver
from podline.stores import Store

if TYPE_CHECKING:
    from podline.observability.reader import PipelineObservations, inspect

#: Names of the reader, which is built on polars: imported on first access, so that recording
#: a run (the observers) does not load polars.
_LAZY = dict.fromkeys(("PipelineObservations", "inspect"), "podline.observability.reader")

__all__ = [
    "LoggingObserver",
    "MissingDependencyError",
    "ObservabilityError",
    "ObservationWarning",
    "OpenTelemetryObserver",
    "PipelineObservations",
    "ProgressObserver",
    "State",
    "StatusObserver",
    "default_observer",
    "inspect",
    "progress_enabled",
]


def default_observer(
    store: Store,
    pipeline_name: str,
    *,
    progress: bool | None = None,
    commit_at_run_end: bool = True,
    carried: CarriedRows | None = None,
) -> CompositeObserver:
    """Status and logging observers on the pipeline's ``status`` and ``logs`` scopes, plus
    progress bars where someone watches (``progress=None``: see ``progress_enabled``; True
    or False: always or never). ``commit_at_run_end=False``: the run's end leaves the rows
    buffered in ``store``, for a caller that commits it right after (``Pipeline.run``);
    ``carried``: where fully cached nodes hand their compact status row, for the run record
    (``podline.observability.carried``)."""
    scope = store.at(PIPELINES, pipeline_name)
    recording = [
        StatusObserver(scope.at(STATUS_SCOPE), carried=carried),
        LoggingObserver(scope.at(LOGS_SCOPE)),
    ]
    for observer in recording:
        observer.commit_at_run_end = commit_at_run_end
    observers: list[ObserverProtocol] = [*recording]
    if progress_enabled() if progress is None else progress:
        observers.append(ProgressObserver(enabled=True))
    return CompositeObserver(*observers)


def __getattr__(name: str) -> object:
    """Import the reader on first access to one of its names."""
    return lazy_export(globals(), _LAZY, name)
