"""``RayExecutor``: calls run on a Ray cluster, in micro-batches, with resource requests.

Calls travel in chunks (``podline.executors.chunks``): one Ray task runs many calls, sized
from their observed durations, so a trivial function does not pay a task per call. A task
returns its outcomes packed (values, times, and whole captures only of the calls that printed,
logged or raised); the driver yields them as tasks finish, and the caller stores and commits
them as it does for any executor: workers never write to a store.

Each task asks Ray for the executor's resources, under Ray's names (``num_cpus``,
``num_gpus``, ``memory``, ``resources``, ``runtime_env``); ``options(...)`` gives a copy with
other requests, for one pod. Tasks are never retried by Ray (``max_retries=0``): a chunk whose
worker died runs again one call at a time, so the call that kills its worker fails alone with
``WorkerCrashedError``. Closing the iterator (Ctrl-C, a cancelled run) cancels the tasks in
flight: running ones get a ``KeyboardInterrupt``.

**The connection.** If this process is already connected to Ray (``ray.init`` was called), the
executor uses that connection and never ends it. Otherwise it connects on first use: to
``address`` (``"auto"``, ``"ray://head:10001"``, ...) or, without one, to a local cluster it
starts (``init`` is passed to ``ray.init``, e.g. ``{"num_cpus": 2}``). A connection podline made
is ended (a local cluster shut down) when the last executor holding it is closed or collected,
and at interpreter exit. Ray ties the processes of a local cluster to the thread that started
them, so a connection made outside the main thread is made, and kept, by a thread of its own.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

from podline.errors import ExecutorError, MissingDependencyError
from podline.executors.base import DEFAULT_POLICY, Calls
from podline.executors.capture import CallArguments, CallOutcome
from podline.executors.chunks import ChunkLostError, payload, run_chunk, run_in_chunks, unpack
from podline.executors.policy import CallPolicy

__all__ = ["RAY_REQUESTS", "RayExecutor"]

#: The task options a ``RayExecutor`` passes to Ray, by Ray's names.
RAY_REQUESTS = ("num_cpus", "num_gpus", "memory", "resources", "runtime_env")
#: Options podline gives ``ray.init`` when it starts a local cluster (``init`` overrides them).
_INIT_DEFAULTS: dict[str, Any] = {"include_dashboard": False}


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "RayExecutor needs Ray, which is not installed: pip install 'podline[ray]'"
        ) from exc
    return ray


class RayExecutor:
    """Run calls as Ray tasks, many calls a task (see the module docs).

    ``address``: the cluster to connect to (``"auto"``: the one ``ray start`` runs on this
    machine); None: start a local one, configured by ``init`` (keyword arguments of
    ``ray.init``). ``num_cpus``, ``num_gpus``, ``memory`` (bytes), ``resources`` (custom
    resources) and ``runtime_env``: what each task asks of Ray. ``max_workers``: calls run at
    once (default: as many tasks as the cluster's resources hold at once).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1,
        num_gpus: float | None = None,
        memory: int | None = None,
        resources: Mapping[str, float] | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        init: Mapping[str, Any] | None = None,
        max_workers: int | None = None,
        chunks_per_worker: int = 4,
    ) -> None:
        self.address = address
        self.init = {**_INIT_DEFAULTS, **(init or {})}
        self.requests = _requests(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            memory=memory,
            resources=resources,
            runtime_env=runtime_env,
        )
        if max_workers is not None and max_workers < 1:
            raise ExecutorError(f"max_workers must be at least 1, got {max_workers}")
        self._max_workers = max_workers
        self.chunks_per_worker = chunks_per_worker
        self._release: weakref.finalize[Any, Any] | None = None

    # ------------------------------------------------------------------ configuration
    def options(self, **requests: Any) -> RayExecutor:
        """A copy asking Ray for other resources (``num_cpus=``, ``num_gpus=``, ``memory=``,
        ``resources=``, ``runtime_env=``), for one pod; it shares the connection."""
        unknown = sorted(set(requests) - set(RAY_REQUESTS))
        if unknown:
            raise ExecutorError(
                f"RayExecutor.options takes {', '.join(RAY_REQUESTS)}; got {', '.join(unknown)}"
            )
        return RayExecutor(
            self.address,
            **{**self.requests, **requests},
            init=self.init,
            chunks_per_worker=self.chunks_per_worker,
        )

    @property
    def max_workers(self) -> int:
        """Calls run at once: given, else the tasks the cluster holds at once (connects)."""
        if self._max_workers is None:
            self._connect()
            self._max_workers = _slots(_ray().cluster_resources(), self.requests)
        return self._max_workers

    @max_workers.setter
    def max_workers(self, value: int) -> None:
        self._max_workers = value

    # ------------------------------------------------------------------ running
    def execute(
        self,
        fn: Callable[..., Any],
        arguments: Sequence[CallArguments],
        *,
        policy: CallPolicy = DEFAULT_POLICY,
    ) -> Calls:
        if not arguments:
            return
        self._connect()
        ray = _ray()
        task = _task(ray).options(max_retries=0, **self.requests)
        cluster = _Cluster(ray, task, ray.put(payload(fn, policy)), self.max_workers)
        yield from run_in_chunks(cluster, arguments, chunks_per_worker=self.chunks_per_worker)

    # ------------------------------------------------------------------ lifetime
    def _connect(self) -> None:
        holding = self._release is not None and self._release.alive
        if not holding and _CONNECTION.hold(self.address, self.init):
            self._release = weakref.finalize(self, _CONNECTION.release)

    def close(self) -> None:
        """Let go of the connection: the last executor holding one podline made ends it (a
        local cluster it started is shut down). A later ``execute`` connects again."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = repr(self.address) if self.address else "local"
        asks = ", ".join(f"{k}={v!r}" for k, v in self.requests.items())
        return f"RayExecutor({where}{', ' if asks else ''}{asks})"


def _requests(**given: Any) -> dict[str, Any]:
    """The task options given (None: left to Ray), checked."""
    requests = {name: value for name, value in given.items() if value is not None}
    for name in ("num_cpus", "num_gpus", "memory"):
        value = requests.get(name)
        if value is not None and not value >= 0:
            raise ExecutorError(f"RayExecutor {name} must be 0 or more, got {value!r}")
    for name, amount in (requests.get("resources") or {}).items():
        if not amount >= 0:
            raise ExecutorError(f"RayExecutor resource {name!r} must be 0 or more, got {amount!r}")
    for name in ("resources", "runtime_env"):
        if name in requests:
            requests[name] = dict(requests[name])
    return requests


def _slots(available: Mapping[str, float], requests: Mapping[str, Any]) -> int:
    """How many tasks asking ``requests`` the cluster's resources hold at once."""
    asked = {
        "CPU": requests.get("num_cpus", 1),
        "GPU": requests.get("num_gpus", 0),
        "memory": requests.get("memory", 0),
        **requests.get("resources", {}),
    }
    slots: list[int] = []
    for name, amount in sorted(asked.items()):
        if amount <= 0:
            continue
        if available.get(name, 0) < amount:
            offered = ", ".join(f"{k}={v:g}" for k, v in sorted(available.items()))
            raise ExecutorError(
                f"the Ray cluster cannot run a task asking {name}={amount:g}: it offers "
                f"{offered}; ask for less, or give max_workers to wait for resources to come"
            )
        slots.append(int(available[name] // amount))
    return max(1, min(slots, default=int(available.get("CPU", 1))))


_TASK: list[Any] = []


def _task(ray: Any) -> Any:
    """The Ray remote function that runs a chunk (made once)."""
    if not _TASK:
        _TASK.append(ray.remote(run_chunk))
    return _TASK[0]


class _Cluster:
    """The Ray cluster as ``Workers`` for one execution's chunks."""

    shared_fate = False
    crash_message = (
        "the Ray worker running this call died (os.abort(), a segmentation fault, the "
        "out-of-memory killer or a lost node); the other calls went on"
    )

    def __init__(self, ray: Any, task: Any, payload: Any, max_workers: int) -> None:
        self.ray = ray
        self.task = task
        self.payload = payload
        self.max_workers = max_workers
        #: Whether the connection to Ray ended during this execution (``_check_connected``).
        self.ended = False
        errors = ray.exceptions
        self.lost = (
            errors.WorkerCrashedError,
            errors.NodeDiedError,
            errors.ObjectLostError,
            errors.OutOfMemoryError,
            errors.LocalRayletDiedError,
        )

    def _check_connected(self, error: BaseException) -> None:
        """Raise ``ExecutorError`` if ``error`` says this process's connection to Ray ended
        (``ray.shutdown()`` from another thread, a cluster gone). Ray then fails its calls
        with ``SystemExit(0)``, which would end the program as if it had succeeded, or, while
        the shutdown is still under way, with errors about objects whose owner is unknown."""
        ended = (
            isinstance(error, SystemExit)
            or (isinstance(error, ValueError | TypeError) and "owner" in str(error))
            or not self.ray.is_initialized()
        )
        if ended and not isinstance(error, KeyboardInterrupt):
            self.ended = True
            raise ExecutorError(
                "the connection to Ray ended while calls were running (ray.shutdown() was "
                "called, or the cluster went away): the calls that finished are stored, and a "
                "run started again computes the rest"
            ) from error

    def submit(self, chunk: list[CallArguments]) -> Any:
        try:
            return self.task.remote(self.payload, chunk)
        except BaseException as error:
            self._check_connected(error)
            raise

    def wait(self, pending: Collection[Any], timeout: float) -> Collection[Any]:
        refs = list(pending)
        try:
            done, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
            if not done:
                return ()
            more, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        except BaseException as error:
            self._check_connected(error)
            raise
        return list(more) or list(done)

    def outcomes(self, handle: Any) -> list[CallOutcome]:
        try:
            return unpack(self.ray.get(handle))
        except self.lost:
            raise ChunkLostError from None
        except self.ray.exceptions.RayTaskError as error:
            if not isinstance(error.cause, Exception):  # a call left its worker (sys.exit)
                raise ChunkLostError from None
            raise ExecutorError(
                "a Ray worker could not run podline's chunk of calls: "
                f"{type(error.cause).__name__}: {error.cause}. Is the function's module, and "
                "podline, importable on the cluster (see runtime_env in docs/executors.md)?"
            ) from error
        except BaseException as error:
            self._check_connected(error)
            raise

    def cancel(self, pending: Collection[Any]) -> None:
        for ref in pending:
            try:
                self.ray.cancel(ref)
            except Exception:
                # Once the connection ended, Ray refuses (an object without an owner); the
                # error that said so is the one to report.
                if not self.ended:
                    raise

    def replace(self) -> None:
        """Nothing to replace: a lost chunk took only its own worker."""


class _Connection:
    """This process's connection to Ray, as far as podline made it: how many executors hold
    it, and the thread that keeps a local cluster's processes alive (see the module docs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.ours = False
        self.keeper: threading.Event | None = None

    def hold(self, address: str | None, init: Mapping[str, Any]) -> bool:
        """Connect unless connected; whether the caller holds a connection podline made."""
        ray = _ray()
        with self.lock:
            if not ray.is_initialized():
                self.keeper = _start(ray, address, init)
                self.ours = True
            if self.ours:
                self.holders += 1
            return self.ours

    def release(self) -> None:
        ray = _ray()
        with self.lock:
            self.holders -= 1
            if self.holders > 0 or not self.ours:
                return
            self.ours = False
            ray.shutdown()
            if self.keeper is not None:
                self.keeper.set()
                self.keeper = None


def _start(ray: Any, address: str | None, init: Mapping[str, Any]) -> threading.Event | None:
    """``ray.init``, in this thread if it is the main one, else in a thread that lives until
    the returned event is set (Ray's processes die with the thread that started them)."""
    if threading.current_thread() is threading.main_thread():
        ray.init(address=address, **init)
        return None
    started = threading.Event()
    done = threading.Event()
    failure: list[BaseException] = []

    def keep() -> None:
        try:
            ray.init(address=address, **init)
        except BaseException as error:  # handed to the caller below
            failure.append(error)
        finally:
            started.set()
        done.wait()

    threading.Thread(target=keep, name="podline-ray", daemon=True).start()
    started.wait()
    if failure:
        raise failure[0]
    return done


_CONNECTION = _Connection()
