"""``PipelineLayout``: which of a pipeline's two stores holds what, and the order of commits.

A pipeline keeps what is its own in its ``store`` and what any pipeline may reuse in its
``result_store`` (the same store unless told otherwise):

* **result store**: the function memo under ``results/`` and the code records at ``code``.
  Both are keyed by function identity, not by pipeline, and are shared by every pipeline
  that names the store. The code records go with the memo because they describe how its
  results were made: a plan compares them with the current code to say what changed, also in
  a pipeline that shares the results and never computed them itself.
* **pipeline store**: everything under ``pipelines/<name>/``: provenance records (which input
  row led to which memo result), operator rows, status, logs and run records.

Records reference results, never the reverse, so every commit podline makes of the pipeline's
store commits the result store first: the nodes and the default observers see the pipeline's
store as ``pipeline_store``, whose ``flush`` does that. A process killed between the two
commits leaves results that no record names yet (the next run finds them in the memo and only
writes the records), never a committed record whose result was lost. (Should that happen
anyway, for instance when a store's own background flush, ``DeltaStore(flush_seconds=...)``,
commits records first, the record is not served: a record whose result the memo does not hold
is computed again.)

With one store for both, the layout is the one a pipeline always had: ``results/``, ``code``
and ``pipelines/`` side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from podline.stores import DelegatingStore, Store

__all__ = ["RESULTS", "PipelineLayout", "ResultsFirst"]

#: The memo's root in the result store.
RESULTS = "results"


@dataclass(frozen=True)
class PipelineLayout:
    """Pipeline ``name``'s stores: ``store`` for its records, ``result_store`` for results."""

    name: str
    store: Store
    result_store: Store

    @property
    def separate(self) -> bool:
        """Whether results go to a store other than the pipeline's."""
        return self.result_store is not self.store

    @property
    def results(self) -> Store:
        """The function memo's root (``results/`` of the result store)."""
        return self.result_store.at(RESULTS)

    @property
    def pipeline_store(self) -> Store:
        """The pipeline's store as nodes and observers write to it: committing it commits
        the result store first (the store itself when both are one)."""
        return ResultsFirst(self.store, self.result_store) if self.separate else self.store

    @property
    def nodes(self) -> Store:
        """The scope of the nodes' records and rows in the pipeline's store."""
        return self.pipeline_store.at("pipelines", self.name, "nodes")

    def flush(self) -> None:
        """Commit both stores, the result store first (see the module docs)."""
        if self.separate:
            self.result_store.flush()
        self.store.flush()


class ResultsFirst(DelegatingStore):
    """``store``, except that ``flush`` and ``close`` commit ``results`` first (see the
    module docs); every other call goes to ``store``, views included."""

    def __init__(self, store: Store, results: Store) -> None:
        super().__init__(store)
        self._results = results

    def wrap(self, inner: Store) -> ResultsFirst:
        return ResultsFirst(inner, self._results)

    def flush(self) -> None:
        self._results.flush()
        self.inner.flush()

    def close(self) -> None:
        self._results.flush()
        self.inner.close()
