"""Executors: where function calls run (in process, threads, processes), with output capture."""

from podline.executors.base import Executor
from podline.executors.capture import CallCapture, CallOutcome, LogEntry
from podline.executors.local import LocalExecutor
from podline.executors.processes import ProcessExecutor
from podline.executors.threads import ThreadExecutor

__all__ = [
    "CallCapture",
    "CallOutcome",
    "Executor",
    "LocalExecutor",
    "LogEntry",
    "ProcessExecutor",
    "ThreadExecutor",
]
