"""Servers the service tests run against, started on 127.0.0.1 for a test session.

``PostgresServer`` runs a throwaway PostgreSQL cluster (``initdb`` in a temporary directory,
trust authentication, no fsync) from the binaries in ``PODLINE_TEST_PG_BIN`` (``.ci/run``
installs Debian's ``postgresql`` and sets it) or the newest ``/usr/lib/postgresql/*/bin``.
PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` user (or
``nobody``). The same skip/fail rule as for S3 applies.

``S3Server`` runs an S3-compatible server (moto in server mode) as a separate process, so its
dependencies stay out of the test environment. ``.ci/run`` installs it in a venv of its own
and names its executable in ``PODLINE_TEST_S3_SERVER``; locally, a ``moto_server`` on
``PATH`` is used too. Without one, the S3 tests are skipped, except when
``PODLINE_REQUIRE_SERVICES`` is set (``.ci/run`` sets it), where a missing server is a
failure: CI runs every test.

The server logs one line per request, which is how tests count the requests a run makes.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

#: Credentials the local server accepts (any do); region and plain HTTP as it serves them.
_ACCESS = {"AWS_ACCESS_KEY_ID": "podline", "AWS_SECRET_ACCESS_KEY": "podline-secret"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def s3_server_command() -> str | None:
    """The S3 server executable to run, or None if there is none."""
    return os.environ.get("PODLINE_TEST_S3_SERVER") or shutil.which("moto_server")


class S3Server:
    """A local S3-compatible server with one bucket, ``bucket``."""

    bucket = "podline-tests"

    def __init__(self, command: str, log: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [command, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_up()
        self._request("PUT", f"/{self.bucket}")

    def _request(self, method: str, path: str) -> int:
        request = urllib.request.Request(self.endpoint + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the S3 server exited: {self.log.read_text()[-2000:]}")
            try:
                self._request("GET", "/")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def credentials(self) -> dict[str, str]:
        """Environment variables holding credentials the server accepts: where users keep
        them, since store configs leave secrets out (see docs/stores.md)."""
        return dict(_ACCESS)

    def storage_options(self) -> dict[str, str]:
        """What a ``DeltaStore`` needs to reach the server besides credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def new_root(self) -> str:
        """A fresh, empty store location in the bucket."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex}"

    def requests(self, under: str = "") -> int:
        """How many requests the server has answered so far (for keys containing ``under``)."""
        return sum(
            1
            for line in self.log.read_text(errors="replace").splitlines()
            if '" ' in line and "HTTP/1.1" in line and under in line
        )

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def start_s3_server(directory: Path) -> S3Server:
    """Start the server, or skip (fail when services are required) if there is none."""
    command = s3_server_command()
    if command is None:
        reason = (
            "no S3 server: install moto[server] (e.g. in its own venv) and set "
            "PODLINE_TEST_S3_SERVER to its moto_server, as .ci/run does"
        )
        if os.environ.get("PODLINE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return S3Server(command, directory / "s3-server.log")


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None if there is none."""
    named = os.environ.get("PODLINE_TEST_PG_BIN")
    if named:
        return Path(named)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return Path(found[-1]).parent if found else None


def _major(initdb: str) -> int:
    version = Path(initdb).parent.parent.name
    return int(version) if version.isdigit() else 0


def _unprivileged() -> dict[str, int]:
    """``subprocess`` arguments that drop root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": user.pw_uid, "group": user.pw_gid}
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer:
    """A PostgreSQL cluster of its own on 127.0.0.1, user ``podline``, trust authentication."""

    user = "podline"

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = _free_port()
        self._as = _unprivileged()
        # pytest's temporary directories are private to root; the server needs its own.
        self.directory = Path(tempfile.mkdtemp(prefix="podline-pg-"))
        if self._as:
            os.chown(self.directory, self._as["user"], self._as["group"])
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, capture_output=True, **self._as,
        )  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def pid(self) -> int:
        """The server's (postmaster's) process id."""
        assert self._process is not None, "the server is stopped"
        return self._process.pid

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it takes connections."""
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-h", "127.0.0.1",
                 "-p", str(self.port), "-k", str(self.directory), "-F"],
                stdout=out, stderr=subprocess.STDOUT, **self._as,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited: {self.log.read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start within 60 s")
            time.sleep(0.1)

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server: ``fast`` ends connections and shuts down cleanly (SIGINT);
        otherwise an immediate shutdown (SIGQUIT: no checkpoint, recovery at the next start,
        as after a crash; a SIGKILL would leave its connection processes running)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT if fast else signal.SIGQUIT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres_server() -> PostgresServer:
    """Start a cluster, or skip (fail when services are required) if PostgreSQL or the ADBC
    driver is missing."""
    bin_dir = postgres_bin()
    reason = None
    if bin_dir is None or not (bin_dir / "postgres").exists():
        reason = (
            "no PostgreSQL server binaries: install Debian's postgresql package (as .ci/run "
            "does) or set PODLINE_TEST_PG_BIN to the directory holding initdb and postgres"
        )
    else:
        try:
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            reason = "no ADBC PostgreSQL driver: pip install -e '.[postgres]'"
    if reason is not None:
        if os.environ.get("PODLINE_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert bin_dir is not None
    return PostgresServer(bin_dir)
