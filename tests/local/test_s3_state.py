"""The S3 emulator keeps its objects on disk (``localplatform.s3_server``): after a clean stop
(``make down``), after SIGKILL (a crash the supervisor restarts), including a multipart
upload, versioning and the bucket's settings. Before it, moto kept everything in memory and
every object below was gone after a restart."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localplatform.context import PROJECT_ROOT
from localplatform.ports import allocate

pytestmark = pytest.mark.timeout(180)


class Emulator:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state = directory / "state.pickle"
        self.port = allocate(["s3"], {}, {})[0]["s3"]
        self.cert, self.key = directory / "s3.crt", directory / "s3.key"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
                *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)),
            ],
            check=True,
            capture_output=True,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "localplatform.s3_server", "--state", str(self.state)]
        argv += ["-H", "127.0.0.1", "-p", str(self.port), "-c", str(self.cert), "-k", str(self.key)]
        log = (self.directory / "s3.log").open("ab")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.proc.poll() is None, (self.directory / "s3.log").read_text()
                time.sleep(0.1)
        raise AssertionError("the S3 emulator did not listen in 60s")

    def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self.proc = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"https://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local-secret",
            verify=str(self.cert),
        )


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path)
    emulator.start()
    try:
        yield emulator
    finally:
        if emulator.proc is not None:
            emulator.proc.kill()
            emulator.proc.wait()


def test_objects_survive_a_clean_stop_and_a_crash(emulator: Emulator) -> None:
    s3 = emulator.client()
    s3.create_bucket(Bucket="artifacts")
    s3.put_bucket_versioning(Bucket="artifacts", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="artifacts", Key="mlflow/1/model/MLmodel", Body=b"flavors: {}\n")
    big = os.urandom(12 * 1024 * 1024)  # above boto3's multipart threshold (8 MiB)
    s3.upload_file(str(_write(emulator.directory / "blob", big)), "artifacts", "mlflow/1/blob")

    emulator.stop(signal.SIGTERM)  # make down
    assert stat.S_IMODE(emulator.state.stat().st_mode) == 0o600
    emulator.start()
    s3 = emulator.client()
    assert s3.get_object(Bucket="artifacts", Key="mlflow/1/model/MLmodel")["Body"].read() == b"flavors: {}\n"
    assert s3.get_object(Bucket="artifacts", Key="mlflow/1/blob")["Body"].read() == big
    assert s3.get_bucket_versioning(Bucket="artifacts")["Status"] == "Enabled"

    s3.put_object(Bucket="artifacts", Key="mlflow/2/late", Body=b"written just before a crash")
    time.sleep(2)  # the saver coalesces writes over a fraction of a second
    emulator.stop(signal.SIGKILL)
    emulator.start()
    s3 = emulator.client()
    assert s3.get_object(Bucket="artifacts", Key="mlflow/2/late")["Body"].read() == b"written just before a crash"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"])
    assert keys == ["mlflow/1/blob", "mlflow/1/model/MLmodel", "mlflow/2/late"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
