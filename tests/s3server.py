"""A real S3 API on loopback for the tests: moto's server mode (PyPI moto[server], dev only), with IAM
authentication on, behind a small TCP front that stands for the store's network presence.

    the store under test --> front (127.0.0.1:endpoint port) --> moto (127.0.0.1:another port)

`stop()` kills the front by its PID: connections in flight break and new ones are refused, as when a
store goes down. `start()` starts it again on the same port. moto stays up behind it and keeps the
bucket's contents, as a real store keeps its disk, so a test can check that nothing was lost.
`freeze()` stops the front with SIGSTOP: connections open and then nothing answers (a silent store).

Other test modules import the fixture: `from tests.s3server import s3_server  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.live import PROJECT_ROOT, free_port, require, wait_until_healthy

REGION = "us-east-1"
BUCKET = "imagehost-test"
STARTUP_SECONDS = 30


@dataclass
class S3Server:
    endpoint: str  # what the app is given (the front)
    moto_endpoint: str  # moto itself: for tools that must not go through a stopped front
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str
    workdir: Path
    moto: subprocess.Popen
    front: subprocess.Popen | None = None
    _front_output: object = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    @property
    def log(self) -> Path:
        """moto's request log (one line per request: method, path and query, status)."""
        return self.workdir / "moto.log"

    def env(self, prefix: str = "") -> dict[str, str]:
        """The settings of an app instance that stores in this bucket (for tests.live.live_app)."""
        return {
            "STORAGE": "s3",
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_BUCKET": self.bucket,
            "S3_REGION": self.region,
            "S3_ACCESS_KEY_ID": self.access_key_id,
            "S3_SECRET_ACCESS_KEY": self.secret_access_key,
            "S3_PREFIX": prefix,
        }

    def changes(self) -> dict[str, str]:
        """The settings that point an app at this bucket, as Settings fields (make_client(**changes))."""
        return {
            "storage": "s3",
            "s3_endpoint_url": self.endpoint,
            "s3_bucket": self.bucket,
            "s3_region": self.region,
            "s3_access_key_id": self.access_key_id,
            "s3_secret_access_key": self.secret_access_key,
        }

    def settings(self, **overrides: str):
        from imagehost.settings import Settings

        return dataclasses.replace(Settings(), **{**self.changes(), **overrides})

    def boto3_client(self):
        """An independent client straight to moto (bypasses the front), to look into the bucket."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.moto_endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, name: str) -> None:
        self.boto3_client().create_bucket(Bucket=name)

    def requests(self, contains: str) -> list[str]:
        """moto's log lines that contain `contains` (e.g. how many list pages were asked for)."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if contains in line]

    def start(self) -> None:
        """Start the front on the endpoint's port (again, after stop())."""
        if self.front is not None and self.front.poll() is None:
            return
        self._front_output = (self.workdir / "front.out").open("ab")
        self.front = subprocess.Popen(
            [sys.executable, "-m", "tests.s3server", "front", str(self.port), self.moto_endpoint.rsplit(":", 1)[1]],
            cwd=PROJECT_ROOT,
            stdout=self._front_output,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.front, "the S3 front")

    def stop(self) -> None:
        """The store goes down: the front is killed by PID, its connections break, new ones are refused."""
        if self.front is None:
            return
        if self.front.poll() is None:
            os.kill(self.front.pid, signal.SIGKILL)
        self.front.wait(10)
        self.front = None
        if self._front_output:
            self._front_output.close()  # type: ignore[attr-defined]

    def freeze(self) -> None:
        """The store goes silent: connections are still accepted by the kernel, nothing answers."""
        assert self.front is not None
        os.kill(self.front.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.front is not None
        os.kill(self.front.pid, signal.SIGCONT)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Down for the block, up again after it whatever happens in it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        self.freeze()
        try:
            yield
        finally:
            self.thaw()

    def close(self) -> None:
        if self.front is not None and self.front.poll() is None:
            self.thaw()
        self.stop()
        self.moto.terminate()
        try:
            self.moto.wait(10)
        except subprocess.TimeoutExpired:
            self.moto.kill()
            self.moto.wait(10)


@contextmanager
def s3_server_process(workdir: Path) -> Iterator[S3Server]:
    """moto on a free loopback port with one bucket and one IAM user allowed s3:*, then signatures checked."""
    require(str(Path(sys.executable).with_name("moto_server")))
    workdir.mkdir(parents=True, exist_ok=True)
    moto_port = free_port()
    moto_endpoint = f"http://127.0.0.1:{moto_port}"
    output = (workdir / "moto.log").open("ab")
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server: S3Server | None = None
    try:
        log = workdir / "moto.log"
        wait_until_healthy(
            f"{moto_endpoint}/moto-api/", moto, "moto", lambda: log.read_text(errors="replace"), STARTUP_SECONDS
        )
        access_key_id, secret_access_key = _set_up(moto_endpoint)
        server = S3Server(
            endpoint=f"http://127.0.0.1:{free_port()}",
            moto_endpoint=moto_endpoint,
            bucket=BUCKET,
            region=REGION,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            workdir=workdir,
            moto=moto,
        )
        server.start()
        yield server
    finally:
        if server is not None:
            server.close()
        elif moto.poll() is None:
            moto.terminate()
            moto.wait(10)
        output.close()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    with s3_server_process(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _set_up(moto_endpoint: str) -> tuple[str, str]:
    """Before authentication is on (moto lets everything through until told otherwise): the user, the
    bucket; then every request must be signed with that user's key, so a wrong secret is refused."""
    import boto3

    anyone = {"endpoint_url": moto_endpoint, "region_name": REGION, "aws_access_key_id": "setup"}
    anyone["aws_secret_access_key"] = "setup"
    iam = boto3.client("iam", **anyone)
    iam.create_user(UserName="imagehost")
    key = iam.create_access_key(UserName="imagehost")["AccessKey"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="imagehost", PolicyName="s3", PolicyDocument=json.dumps(policy))
    boto3.client("s3", **anyone).create_bucket(Bucket=BUCKET)
    httpx.post(f"{moto_endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    return key["AccessKeyId"], key["SecretAccessKey"]


def _wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not listen on {port} in {STARTUP_SECONDS} s")
        time.sleep(0.02)


# The front: `python -m tests.s3server front PORT MOTO_PORT`, bytes both ways, nothing else.


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(256 * 1024):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _front(port: int, moto_port: int) -> None:
    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            moto_reader, moto_writer = await asyncio.open_connection("127.0.0.1", moto_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, moto_writer), _pipe(moto_reader, client_writer))

    server = await asyncio.start_server(connect, "127.0.0.1", port, reuse_address=True, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["front"]:
    asyncio.run(_front(int(sys.argv[2]), int(sys.argv[3])))
