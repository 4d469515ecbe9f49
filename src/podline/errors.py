"""The exception hierarchy of podline.

Every error podline raises on purpose derives from :class:`PodlineError`, so callers can catch
one class. Messages name the column, type or element at fault; where several names are listed
they are sorted, so the same mistake always produces the same text.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CallTimeoutError",
    "ConfigurationError",
    "DuplicateRecordIdError",
    "ExecutorError",
    "FunctionCallError",
    "FunctionDefinitionError",
    "FunctionIdentityError",
    "GraphError",
    "HashingError",
    "InexactValueError",
    "InputFileError",
    "InputValidationError",
    "MissingDependencyError",
    "NotFoundError",
    "ObservabilityError",
    "OperatorError",
    "OutputFileOverwrittenError",
    "OutputValidationError",
    "PipelineError",
    "PodlineError",
    "ReadOnlyNodeError",
    "RemoteCallError",
    "ReservedColumnError",
    "RunCancelledError",
    "SchemaError",
    "SourceError",
    "StoreError",
    "UnknownNodeTypeError",
    "UnsupportedTypeError",
    "WorkerCrashedError",
    "format_names",
]


def format_names(names: Iterable[str]) -> str:
    """Render column or element names as a sorted, quoted, comma-separated list."""
    return ", ".join(repr(name) for name in sorted(set(names)))


class PodlineError(Exception):
    """Base class of every error podline raises deliberately."""


class SchemaError(PodlineError, ValueError):
    """A schema is inconsistent: conflicting types, unknown or duplicate columns."""


class UnsupportedTypeError(SchemaError, TypeError):
    """A Python annotation or Arrow type has no podline mapping.

    ``field`` names the column (or nested field path) whose type is at fault.
    """

    def __init__(self, field: str, type_: object, reason: str = "") -> None:
        self.field = field
        self.type = type_
        detail = f": {reason}" if reason else ""
        super().__init__(f"column {field!r} has unsupported type {type_!r}{detail}")


class ReservedColumnError(SchemaError):
    """User data uses a column name that podline reserves for hidden columns."""

    def __init__(self, columns: Iterable[str], prefix: str) -> None:
        self.columns = tuple(sorted(set(columns)))
        super().__init__(
            f"column name(s) {format_names(self.columns)} start with the reserved prefix "
            f"{prefix!r}; podline keeps that prefix for its hidden columns. Rename them, "
            f"e.g. with a leading letter."
        )


class HashingError(PodlineError, TypeError):
    """A value cannot be hashed canonically (unknown type, missing file, out-of-range value)."""


class InputValidationError(PodlineError, ValueError):
    """Data handed to a podline element does not match what the element expects."""


class InexactValueError(InputValidationError):
    """A value cannot be stored exactly in its declared type (see ``podline.exact``).

    ``column`` names the column, ``row`` the value's position in the data given, ``value`` is
    the value itself and ``reason`` says why it does not fit.
    """

    def __init__(self, column: str, row: int, value: object, reason: str, type_: str) -> None:
        self.column = column
        self.row = row
        self.value = value
        self.reason = reason
        super().__init__(f"column {column!r}, row {row}: {reason} (the column's type is {type_})")


class InputFileError(InputValidationError):
    """A row names an input file that is missing or unreadable: that row fails, the others
    run."""


class SourceError(InputValidationError):
    """A source cannot be built from its input (missing tag column, unreadable file, ...)."""


class DuplicateRecordIdError(SourceError):
    """A source's record-id column holds the same id on more than one row."""


class StoreError(PodlineError):
    """A store cannot do what was asked: a type conflict, an unreadable or unwritable path."""


class RemoteCallError(PodlineError):
    """A call in a worker process failed in a way that could not be sent back as it was."""


class CallTimeoutError(PodlineError, TimeoutError):
    """A call ran longer than its time limit (``timeout=``) and was stopped."""


class WorkerCrashedError(RemoteCallError):
    """The worker process running a call died (``os.abort()``, a segmentation fault, the
    kernel's out-of-memory killer): that call fails, the others go on."""


class ConfigurationError(PodlineError, ValueError):
    """An option given to a podline object is not one it accepts (an unknown choice, a number
    out of range); the message names the option and the value."""


class ExecutorError(ConfigurationError):
    """An executor cannot be set up as asked (e.g. fewer than one worker)."""


class FunctionIdentityError(PodlineError, TypeError):
    """A function's identity cannot be determined soundly (bound method, no source, ...)."""


class FunctionDefinitionError(PodlineError, TypeError):
    """A function cannot be used as a packet function as written (missing annotations, ...)."""


class OutputValidationError(PodlineError, ValueError):
    """A packet function returned a value its declared output does not allow."""


class OutputFileOverwrittenError(OutputValidationError):
    """A call returned a file that no longer held what the call wrote when its result was to
    be stored: another call (or process) wrote it since. The result is not stored. Names the
    function, the file, the row's tags and, when known, those of the row that wrote it."""


class FunctionCallError(PodlineError):
    """A packet function failed on a row; names the function and the input tag.

    The original exception is chained as ``__cause__``.
    """


class OperatorError(InputValidationError):
    """An operator cannot be applied to its inputs or built from its parameters.

    The message starts with the operator's name; ``operator`` holds it too.
    """

    def __init__(self, operator: str, message: str) -> None:
        self.operator = operator
        super().__init__(f"{operator}: {message}")


class GraphError(PodlineError, ValueError):
    """A node graph that no orchestrator can run (a function node without exactly one
    upstream); names the node."""


class UnknownNodeTypeError(GraphError, TypeError):
    """A node whose ``node_type`` is none of ``source``, ``function`` and ``operator``."""


class PipelineError(PodlineError):
    """A pipeline is used in a way its life cycle does not allow."""


class ReadOnlyNodeError(PipelineError):
    """A node of a loaded pipeline cannot run: its function cannot be imported, its source
    cannot be built again, or it depends on such a node. Names the node and the cause (the
    function by module and qualified name); the stored results stay readable."""


class RunCancelledError(PodlineError):
    """A function node's calls stopped because its run was cancelled or failed."""


class ObservabilityError(PodlineError, ValueError):
    """A query names a pipeline, node, state or tag that the observations do not have."""


class MissingDependencyError(PodlineError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class NotFoundError(PodlineError, LookupError):
    """A store, pipeline or node asked for by name holds nothing or does not exist; the
    message names it and what there is instead."""
