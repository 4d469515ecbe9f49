"""Servers the service tests run against, started on 127.0.0.1 for a test session.

``S3Server`` runs an S3-compatible server (moto in server mode) as a separate process, so its
dependencies stay out of the test environment. ``.ci/run`` installs it in a venv of its own
and names its executable in ``PODLINE_TEST_S3_SERVER``; locally, a ``moto_server`` on
``PATH`` is used too. Without one, the S3 tests are skipped, except when
``PODLINE_REQUIRE_SERVICES`` is set (``.ci/run`` sets it), where a missing server is a
failure: CI runs every test.

The server logs one line per request, which is how tests count the requests a run makes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
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
