"""Executors: where function calls run (in process, threads, processes), with output capture,
under a ``CallPolicy`` (time limits, retries, bounded captured output)."""

from podline.executors.base import Executor, Finished, in_input_order
from podline.executors.capture import CallCapture, CallOutcome, LogEntry
from podline.executors.local import LocalExecutor
from podline.executors.policy import CallPolicy, CallTimeoutError
from podline.executors.processes import ProcessExecutor
from podline.executors.threads import ThreadExecutor

__all__ = [
    "CallCapture",
    "CallOutcome",
    "CallPolicy",
    "CallTimeoutError",
    "Executor",
    "Finished",
    "LocalExecutor",
    "LogEntry",
    "ProcessExecutor",
    "ThreadExecutor",
    "in_input_order",
]
