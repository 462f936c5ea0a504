"""A real S3 API on a loopback port (moto's threaded server), for lakes that are not on local disk.

The server runs in this process, but it is reached over HTTP like any S3 endpoint, so Ray workers
(other processes) reach it too. Credentials travel inside the lake URI (``s3://KEY:SECRET@bucket/...``),
because Ray's workers may have been started before a test could set ``AWS_*`` variables.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs
import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class S3Server:
    """A running moto server: ``endpoint`` is ``127.0.0.1:PORT``."""

    endpoint: str

    def query(self) -> str:
        """The URI query that points ``pyarrow.fs`` at this server (plain HTTP, a fixed region)."""
        return f"endpoint_override={self.endpoint}&scheme=http&region={REGION}"

    def uri(self, bucket: str, prefix: str = "lake", *, credentials: bool = True) -> str:
        """A lake URI on this server; with ``credentials`` the keys ride in the URI's user info."""
        auth = f"{ACCESS_KEY}:{SECRET_KEY}@" if credentials else ""
        return f"s3://{auth}{bucket}/{prefix}?{self.query()}"

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION, scheme="http",
                                 endpoint_override=self.endpoint, allow_bucket_creation=True)

    def new_bucket(self, stem: str = "lake") -> str:
        """Create a fresh bucket (S3 names: lowercase letters, digits and dashes) and return its name."""
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (directory markers left out), sorted."""
        selector = pafs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), recursive=True, allow_not_found=True)
        infos = self.filesystem().get_file_info(selector)
        return sorted(i.path.removeprefix(f"{bucket}/") for i in infos if i.type == pafs.FileType.File)


def start_s3_server() -> tuple[S3Server, object]:
    """Start moto's server on a free loopback port; returns the server and the handle to ``stop()``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Server(endpoint=f"127.0.0.1:{port}"), server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the test session (each test makes its own bucket)."""
    pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
    s3, handle = start_s3_server()
    try:
        yield s3
    finally:
        handle.stop()  # type: ignore[attr-defined]


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


@pytest.fixture
def s3_lake(s3_server: S3Server, s3_bucket: str) -> str:
    """A lake URI on a fresh bucket, credentials in the URI."""
    return s3_server.uri(s3_bucket)
