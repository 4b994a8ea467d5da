"""A real browser for the integration tests: headless Chromium (the Debian ``chromium``
package) driven over the DevTools protocol on ``--remote-debugging-pipe`` — no port, no
websocket library, nothing downloaded at run time.

TLS is verified for real: the platform's CA is imported into a private NSS database (the trust
store Chromium reads on Linux, ``$HOME/.pki/nssdb``) of a throw-away ``HOME``; no
``--ignore-certificate-errors`` of any kind. Basic-auth credentials go in an ``Authorization``
header that Chromium adds to every request of the page (``Network.setExtraHTTPHeaders``),
because Chromium ignores ``user:pass@`` in URLs for the page's own requests.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSER_NAMES = ("chromium", "chromium-browser")
INSTALL_HINT = "install the Debian package: apt-get install -y chromium libnss3-tools"


class BrowserError(RuntimeError):
    pass


def find_program(names: tuple[str, ...], what: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"{what} not found (looked for {', '.join(names)}): {INSTALL_HINT}")


def make_nss_home(home: Path, ca_cert: Path | None) -> Path:
    """A ``HOME`` whose NSS database trusts ``ca_cert`` (or nothing but the public roots)."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    if ca_cert is not None:
        certutil = find_program(("certutil",), "certutil (NSS tools)")
        for args in (
            ["-N", "--empty-password"],
            ["-A", "-n", "mlflow-platform local CA", "-t", "C,,", "-i", str(ca_cert)],
        ):
            result = subprocess.run(
                [certutil, "-d", f"sql:{nssdb}", *args], capture_output=True, text=True, check=False, timeout=30
            )
            if result.returncode != 0:
                raise BrowserError(f"certutil {args[0]} failed: {result.stderr.strip()}")
    return home


@dataclass
class Navigation:
    url: str
    error_text: str | None
    status: int | None
    security_state: str | None
    issuer: str | None


@dataclass
class Browser:
    """One headless Chromium with one page, spoken to over the DevTools pipe."""

    process: subprocess.Popen[bytes]
    session_id: str = ""
    _next_id: int = 0
    _replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    _events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def __post_init__(self) -> None:
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        buffer = b""
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._cond:
                        self._replies[message["id"]] = message
                        self._cond.notify_all()
                else:
                    self._events.put(message)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float = 60) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if self.session_id and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session_id
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(message).encode() + b"\0")
        stdin.flush()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while ident not in self._replies:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise BrowserError(f"no reply to {method} ({'browser exited' if self._closed else 'timeout'})")
                self._cond.wait(remaining)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def open_page(self, width: int = 1400, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session_id = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable")
        self.send("Network.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def set_basic_auth(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.send("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})

    def navigate(self, url: str, *, timeout_s: float = 60) -> Navigation:
        """Load ``url``; the main document's HTTP status and TLS facts come from its response."""
        while not self._events.empty():
            self._events.get_nowait()
        result = self.send("Page.navigate", {"url": url}, timeout_s=timeout_s)
        nav = Navigation(url, result.get("errorText") or None, None, None, None)
        if nav.error_text or "loaderId" not in result:
            return nav  # failed, or a same-document (hash route) change: no new response
        frame = result.get("frameId")
        deadline = time.monotonic() + timeout_s
        loaded = False
        while time.monotonic() < deadline and not (loaded and nav.status is not None):
            try:
                event = self._events.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            params = event.get("params", {})
            if event.get("method") == "Network.responseReceived" and params.get("type") == "Document":
                if params.get("frameId") == frame:
                    response = params["response"]
                    nav.status = int(response["status"])
                    nav.security_state = response.get("securityState")
                    nav.issuer = (response.get("securityDetails") or {}).get("issuer")
            elif event.get("method") == "Page.loadEventFired":
                loaded = True
        return nav

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout_s: float = 60) -> float:
        """Seconds until the JavaScript ``expression`` is truthy in the page."""
        began = time.monotonic()
        while time.monotonic() - began < timeout_s:
            if self.evaluate(expression):
                return time.monotonic() - began
            time.sleep(0.25)
        body = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : '(no body)'")
        where = self.evaluate("location.href")
        raise BrowserError(f"{expression} still false after {timeout_s:.0f}s on {where}; the page shows:\n{body}")

    def wait_for_text(self, text: str, *, timeout_s: float = 60) -> float:
        """Seconds until ``text`` is in the rendered page (the React app has drawn it)."""
        return self.wait_for(
            f"document.body !== null && document.body.innerText.includes({json.dumps(text)})", timeout_s=timeout_s
        )

    def click_link(self, text: str) -> str:
        """Click the link whose visible text is exactly ``text``, as a user would; returns its href."""
        href = self.evaluate(
            "(() => { const a = Array.from(document.querySelectorAll('a'))"
            f".find(e => e.textContent.trim() === {json.dumps(text)});"
            " if (!a) return null; a.click(); return a.getAttribute('href'); })()"
        )
        if href is None:
            raise BrowserError(f"no link with text {text!r} on {self.evaluate('location.href')}")
        return str(href)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))


@contextmanager
def launch(home: Path, *, log_path: Path) -> Iterator[Browser]:
    """Start headless Chromium with ``home`` as its HOME (hence its NSS trust store)."""
    program = find_program(BROWSER_NAMES, "Chromium")
    profile = home / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    argv = [
        program,
        "--headless",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--password-store=basic",
        # Loopback only: every name but localhost fails to resolve, so the test is hermetic and
        # would catch a UI that needs the internet (a CDN, fonts, telemetry).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "about:blank",
    ]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    # The DevTools pipe is fd 3 (commands to Chromium) and fd 4 (replies): map our stdin/stdout
    # pipes there, and send Chromium's own stdout and stderr to the log.
    log = open(log_path, "wb")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        ["/bin/sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>&2', "sh", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        cwd=str(home),
        start_new_session=True,
    )
    browser = Browser(process)
    try:
        try:
            browser.send("Browser.getVersion", timeout_s=60)
        except BrowserError as error:
            log.flush()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise BrowserError(f"Chromium did not start ({error}); its log {log_path} ends with:\n{tail}") from None
        yield browser
    finally:
        with suppress(BrowserError, OSError):
            browser.send("Browser.close", timeout_s=10)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=15)
        log.close()
