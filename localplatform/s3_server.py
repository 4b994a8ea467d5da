"""The local S3 endpoint: moto's server, with its S3 state kept on disk.

Why: moto keeps every object in memory, so artifacts vanished on ``make down``/``make up`` (and
on any restart of the emulator) while runs, registered models and aliases survived in
PostgreSQL: ``models:/name@champion`` then failed with "No artifacts found". A platform that
loses artifacts on restart is not one people can use for real work.

What was chosen, and why: moto (the pinned 5.2.5) has no persistence option of its own. Its
*recorder* (``MOTO_ENABLE_RECORDING``) replays requests rather than restoring state, which
breaks on multipart uploads (the replayed parts name upload ids the new server never issued).
No S3 server with on-disk state that also implements the bucket settings the platform applies
and reads back (versioning, SSE-KMS, public access block, ownership controls, lifecycle) is
installable here from Debian or PyPI (MinIO, Garage, SeaweedFS are not packaged; radosgw needs a
Ceph cluster). So the emulator stays moto, and its S3 backend is snapshotted with pickle — which
moto supports for its objects (``FakeKey.__getstate__``/``__setstate__`` in ``moto/s3/models.py``)
— and restored when it starts:

* after every write request (anything but GET/HEAD/OPTIONS), coalesced over
  :data:`SAVE_DELAY_S`, and on SIGTERM/SIGINT (``make down``): a crash or SIGKILL loses at most
  the writes of the last moment, not everything;
* atomically (temp file, fsync, rename, mode 0600): a kill mid-save leaves the previous
  snapshot intact;
* consistently: requests share a gate that the snapshot takes exclusively, so no request is
  half-applied in it.

Only S3 is kept. moto's KMS keys hold private-key objects that do not pickle; the bucket job
(``localplatform.jobs bucket``, rerun after each start) recreates the key and the bucket's
encryption setting, and moto does not really encrypt, so objects stay readable. The cost: each
save writes the whole store, fine for a local platform's artifacts, not for terabytes.

The snapshot is a pickle, so loading it runs code from it: it lives in the state dir (0700 or
0711, not listable), is written and read only by the invoking user, and is never taken from
anywhere else.

``python -m localplatform.s3_server --state FILE -H HOST -p PORT -c CERT -k KEY``
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

SAVE_DELAY_S = 0.3
"""Writes arriving within this time after one another are saved together."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Gate:
    """Many requests at once, or one snapshot alone (a readers-writer lock)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def s3_backends() -> Any:
    from moto.backends import get_backend

    return get_backend("s3")


class Store:
    """moto's S3 backend and its snapshot file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gate = Gate()
        self.dirty = threading.Event()
        self.saves = 0
        self._writing = threading.Lock()

    def restore(self) -> int:
        """Load the snapshot, if any, into moto's S3 backend; returns the number of buckets."""
        if not self.path.exists():
            return 0
        with self.path.open("rb") as handle:
            state = pickle.load(handle)  # noqa: S301 - our own file, 0600, in the user's state dir
        backends = s3_backends()
        backends.update(state)
        return sum(len(backend.buckets) for account in backends.values() for backend in account.values())

    def save(self) -> None:
        with self._writing:
            self._save()

    def _save(self) -> None:
        with self.gate.exclusive():
            data = pickle.dumps(dict(s3_backends()), protocol=pickle.HIGHEST_PROTOCOL)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.saves += 1

    def middleware(self, app: WsgiApp) -> WsgiApp:
        def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            with self.gate.shared():
                result = app(environ, start_response)
            if environ.get("REQUEST_METHOD", "GET").upper() not in READ_METHODS:
                self.dirty.set()
            return result

        return wrapped

    def saver(self, stopping: threading.Event) -> None:
        """Save soon after writes, until stopping (the final save is the caller's)."""
        while not stopping.is_set():
            if not self.dirty.wait(timeout=0.5):
                continue
            time.sleep(SAVE_DELAY_S)
            self.dirty.clear()
            try:
                self.save()
            except OSError as error:  # a full disk must not take the endpoint down; say it
                print(f"s3 state: save failed: {error}", flush=True)
                self.dirty.set()
                time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localplatform.s3_server", description="moto's S3 with its state on disk"
    )
    parser.add_argument("--state", type=Path, required=True, help="the snapshot file")
    parser.add_argument("-H", "--host", required=True)
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("-c", "--ssl-cert", required=True)
    parser.add_argument("-k", "--ssl-key", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    store = Store(args.state)
    began = time.monotonic()
    buckets = store.restore()
    print(f"s3 state: restored {buckets} bucket(s) from {args.state} in {time.monotonic() - began:.1f}s", flush=True)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # out of run_simple's loop in the main thread; the final save follows

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stopping = threading.Event()
    saver = threading.Thread(target=store.saver, args=(stopping,), name="s3-state-saver", daemon=True)
    saver.start()
    app = DomainDispatcherApplication(create_backend_app)
    try:
        run_simple(
            args.host,
            args.port,
            store.middleware(app),
            threaded=True,
            ssl_context=(args.ssl_cert, args.ssl_key),
            request_handler=MotoRequestHandler,
        )
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the final save finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stopping.set()
        saver.join(timeout=30)
        store.save()
        print(f"s3 state: saved to {args.state} ({store.saves} saves)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
