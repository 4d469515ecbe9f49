"""A pipeline's specification: what it is made of, as versioned JSON.

The specification says, per node in compile order: its label, kind, content and pipeline
hashes, upstream labels (in argument order), its output schema (system tags included), and
what the node needs to be built again:

* a **source**: its class and, for sources that read files, the arguments that read them
  again (``rebuild``; ``null`` for sources built from Python data, which cannot be rebuilt);
* an **operator**: its class, its parameters (``Operator.spec_parameters``) and cache mode;
* a **function**: where its code lives (``module`` and ``qualname``), its name, version,
  identity mode, code hash, input and output schemas, output keys and the pod's column
  mapping (``inputs``).

Schemas carry readable column types (``columns``) and the exact Arrow schema (``arrow``,
base64 of Arrow's IPC schema message), which is what loading uses. ``spec_text`` renders a
specification with sorted keys, so the same pipeline always gives the same text, and
``spec_id`` hashes that text. docs/save-and-load.md documents the format.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from podline.columns import is_system_tag
from podline.errors import PipelineError
from podline.hashing import HASH_SCHEME, ContentHash
from podline.nodes import Node, is_function_node, is_operator_node
from podline.schema import Schema, type_name
from podline.stores import Store
from podline.streams import ProducedStream

__all__ = [
    "SPEC_FORMAT",
    "SPEC_VERSION",
    "Identified",
    "Parameterized",
    "Rebuildable",
    "check_spec",
    "decode_schema",
    "describe_pipeline",
    "encode_schema",
    "pipeline_spec",
    "spec_id",
    "spec_text",
    "user_tags",
]

#: The ``format`` field of every specification.
SPEC_FORMAT = "podline.pipeline"
#: The version of the layout; loading refuses newer versions.
SPEC_VERSION = 1


@runtime_checkable
class Rebuildable(Protocol):
    """A source that can say how to build itself again (file sources)."""

    def rebuild_arguments(self) -> dict[str, Any] | None:
        """Keyword arguments of the class that build the same source, JSON values only;
        None when the source cannot be built again from a description."""
        ...


@runtime_checkable
class Identified(Protocol):
    """A source, known by its source id (what its rows' system tags hold)."""

    @property
    def source_id(self) -> str: ...


@runtime_checkable
class Parameterized(Protocol):
    """An operator that can give its parameters as JSON values (``Operator``)."""

    def spec_parameters(self) -> dict[str, Any] | None:
        """The parameters as JSON values; None when some parameter has no JSON form."""
        ...


def encode_schema(schema: Schema) -> dict[str, Any]:
    """A schema as JSON: readable types, the exact Arrow schema, optional fields."""
    arrow = base64.b64encode(schema.to_arrow().serialize().to_pybytes()).decode()
    encoded: dict[str, Any] = {
        "columns": [[name, type_name(tp)] for name, tp in schema.items()],
        "arrow": arrow,
    }
    if schema.optional:
        encoded["optional"] = sorted(schema.optional)
    return encoded


def decode_schema(encoded: dict[str, Any]) -> Schema:
    """The schema ``encode_schema`` encoded."""
    arrow = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded["arrow"])))
    fields = Schema.from_arrow(arrow)
    return Schema(dict(fields), optional=frozenset(encoded.get("optional", ())))


def user_tags(tags: Schema) -> Schema:
    """The tag columns of a schema without the system tags."""
    return tags.drop([name for name in tags if is_system_tag(name)])


def pipeline_spec(
    name: str, uri: str, nodes: tuple[Node, ...], result_store: str | None = None
) -> dict[str, Any]:
    """The specification of a compiled pipeline (see the module docs); ``result_store`` is
    the configuration of a result store other than the pipeline's store."""
    return {
        **({"result_store": result_store} if result_store is not None else {}),
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "hash_scheme": HASH_SCHEME,
        "name": name,
        "uri": uri,
        "nodes": [_node_spec(node) for node in nodes],
    }


def spec_text(spec: dict[str, Any]) -> str:
    """The specification as JSON text, keys sorted (nodes stay in compile order)."""
    return json.dumps(spec, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def spec_id(spec: dict[str, Any]) -> str:
    """16 hex digits over ``spec_text``: the id under which a run stores the specification."""
    return ContentHash.of(spec_text(spec).encode()).short(16)


def check_spec(spec: Any, where: str) -> dict[str, Any]:
    """``spec`` if it is a specification this podline reads; else a ``PipelineError``."""
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise PipelineError(f"{where} is not a podline pipeline specification (format)")
    version = spec.get("version")
    if not isinstance(version, int) or version > SPEC_VERSION:
        raise PipelineError(
            f"{where} has specification version {version!r}; this podline reads versions "
            f"up to {SPEC_VERSION}: upgrade podline to load it"
        )
    return spec


def _node_spec(node: Node) -> dict[str, Any]:
    tags, packets = node.output_schema(system_tags=True)
    spec: dict[str, Any] = {
        "label": node.label,
        "kind": node.node_type,
        "content_hash": str(node.content_hash()),
        "pipeline_hash": str(node.pipeline_hash()),
        "upstreams": [upstream.label for upstream in node.upstreams],
        "tags": encode_schema(tags),
        "packets": encode_schema(packets),
    }
    if is_function_node(node):
        spec["function"] = _function_spec(node)
    elif is_operator_node(node):
        spec["operator"] = _operator_spec(node)
    else:
        spec["source"] = _source_spec(node.stream)
        if isinstance(node.stream, Identified):
            # What the rows were stamped with: a loaded pipeline that cannot read the source
            # again serves the results of these rows (``StampedSource``), not of every
            # version of the data the store saw.
            spec["source_id"] = node.stream.source_id
    return spec


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _source_spec(stream: object) -> dict[str, Any]:
    rebuild = stream.rebuild_arguments() if isinstance(stream, Rebuildable) else None
    return {"class": _qualified(type(stream)), "rebuild": rebuild}


def _operator_spec(node: Any) -> dict[str, Any]:
    stream: ProducedStream = node.stream
    operator = stream.producer
    return {
        "class": _qualified(type(operator)),
        "parameters": (operator.spec_parameters() if isinstance(operator, Parameterized) else None),
        "cache_mode": str(node.cache_mode),
    }


def _function_spec(node: Any) -> dict[str, Any]:
    pod = node.pod
    function = pod.packet_function
    fn = getattr(function.fn, "func", function.fn)  # a functools.partial's function
    code = function.code_hash
    return {
        "name": function.name,
        "version": function.version,
        "module": getattr(fn, "__module__", None),
        "qualname": getattr(fn, "__qualname__", None),
        "identity": function.identity_mode,
        "code_hash": None if code is None else str(code),
        "content_hash": str(function.content_hash()),
        "pipeline_hash": str(function.pipeline_hash()),
        "output_keys": list(function.output_keys),
        "input_schema": encode_schema(function.input_schema),
        "output_schema": encode_schema(function.output_schema),
        "inputs": dict(sorted(pod.input_map.items())),
        "depends_on": dict(sorted(function.dependencies.items())),
        "is_async": function.is_async,
    }


def describe_pipeline(name: str, store: Store, nodes: Iterable[Node] | None) -> str:
    """The ``repr`` of a pipeline: its name, store and nodes (kind, label, upstreams),
    reading nothing and compiling nothing."""
    head = f"Pipeline({name!r}, store={store.to_config()!r})"
    if nodes is None:
        return f"{head}: not compiled yet (leaving its with block compiles it)"
    listed = list(nodes)
    width = max((len(node.label) for node in listed), default=0)
    lines = [f"{head}: {len(listed)} node{'s' if len(listed) != 1 else ''}"]
    for node in listed:
        inputs = ", ".join(upstream.label for upstream in node.upstreams)
        line = f"  {node.label:<{width}}  {node.node_type:<8}"
        lines.append(f"{line}  <- {inputs}" if inputs else line.rstrip())
    return "\n".join(lines)
