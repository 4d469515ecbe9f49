"""Element identity: the two hashes every pipeline element has, and how new kinds plug in.

* ``content_hash()`` is data-inclusive: the key of memoization and of "the same node on the
  same data".
* ``pipeline_hash()`` covers schema and topology only (a Merkle chain); it scopes store
  tables, so the same function on same-schema data shares one table.

An element describes itself once, as plain values, through ``identity_structure()`` and
(optionally) ``pipeline_identity_structure()``. Nested elements inside a structure are not
inlined: each contributes its own hash, its content hash to a content hash and its pipeline
hash to a pipeline hash. Subclassing :class:`IdentityMixin` is all a new element kind needs;
anything that satisfies :class:`Identifiable` is accepted wherever an element is expected.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from podline.errors import HashingError
from podline.hashing.digest import ContentHash
from podline.hashing.values import hash_value

__all__ = ["Identifiable", "IdentityMixin", "PipelineElement"]


@runtime_checkable
class Identifiable(Protocol):
    """Anything with a content identity."""

    def identity_structure(self) -> Any:
        """Plain values (and nested elements) that define this object's content identity."""
        ...

    def content_hash(self) -> ContentHash:
        """The data-inclusive hash of this object."""
        ...


@runtime_checkable
class PipelineElement(Identifiable, Protocol):
    """An element of a pipeline graph: it also has a schema-and-topology identity."""

    def pipeline_identity_structure(self) -> Any:
        """Plain values (and nested elements) that define this element's pipeline identity."""
        ...

    def pipeline_hash(self) -> ContentHash:
        """The schema-and-topology hash of this element."""
        ...


def _content(obj: Any) -> ContentHash:
    return _checked(obj, obj.content_hash())


def _pipeline(obj: Any) -> ContentHash:
    if isinstance(obj, PipelineElement):
        return _checked(obj, obj.pipeline_hash())
    return _content(obj)


def _checked(obj: Any, value: Any) -> ContentHash:
    if not isinstance(value, ContentHash):
        raise HashingError(f"{type(obj).__name__} returned {value!r} instead of a ContentHash")
    return value


class IdentityMixin:
    """Implements ``content_hash``/``pipeline_hash`` from the identity structures, cached.

    Subclasses implement ``identity_structure()``; ``pipeline_identity_structure()`` defaults
    to the same structure. Elements are immutable, so each hash is computed once.
    """

    _content_hash_cache: ContentHash | None = None
    _pipeline_hash_cache: ContentHash | None = None

    def identity_structure(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define identity_structure()")

    def pipeline_identity_structure(self) -> Any:
        return self.identity_structure()

    def content_hash(self) -> ContentHash:
        if self._content_hash_cache is None:
            self._content_hash_cache = hash_value(self._tagged(self.identity_structure()), _content)
        return self._content_hash_cache

    def pipeline_hash(self) -> ContentHash:
        if self._pipeline_hash_cache is None:
            structure = self._tagged(self.pipeline_identity_structure())
            self._pipeline_hash_cache = hash_value(structure, _pipeline)
        return self._pipeline_hash_cache

    def _tagged(self, structure: Any) -> tuple[str, Any]:
        # The kind name keeps equal structures of different element kinds apart.
        return (type(self).identity_kind(), structure)

    @classmethod
    def identity_kind(cls) -> str:
        """The name that separates this kind's identities from other kinds'; stable by design."""
        return cls.__name__
