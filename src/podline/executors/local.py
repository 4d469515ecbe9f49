"""``LocalExecutor``: calls run one after another in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from podline.executors.base import DEFAULT_POLICY, Calls, run_sequentially
from podline.executors.capture import CallArguments
from podline.executors.policy import CallPolicy

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Sequential, in-process execution: the default, and the cheapest per call."""

    max_workers = 1

    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        return run_sequentially(fn, arguments, policy=policy)

    def __repr__(self) -> str:
        return "LocalExecutor()"
