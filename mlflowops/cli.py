"""Shared command-line plumbing: the contract CI relies on, implemented once.

* ``--help`` on every tool, ``--json`` for machine-readable output on stdout.
* Exit status: 0 success, 1 refused/failed (a gate said no, access denied, validation failed),
  2 usage or configuration error, 3 could not complete (server unreachable, authentication,
  an unexpected API error).
* Failure prints exactly one line, ``error: <reason>``, on stderr — never a traceback (set
  ``MLFLOWOPS_DEBUG=1`` to get one). With ``--json`` stdout also carries
  ``{"ok": false, "error": ..., "exit_code": ...}`` so a pipeline parsing stdout sees the failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TextIO

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3

_MAX_REASON = 400


class OpsError(Exception):
    """A failure the tool explains in one line; ``exit_code`` says which kind."""

    exit_code = EXIT_ERROR

    def __init__(self, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data or {}


class Refused(OpsError):
    """The operation was evaluated and refused (a gate, a denied permission, a failed check)."""

    exit_code = EXIT_REFUSED


class ConfigError(OpsError):
    """Bad arguments, a bad config file, or a missing setting: fix the invocation."""

    exit_code = EXIT_USAGE


@dataclass
class Report:
    """What a successful (or refused-but-reported) run produced: human lines and a JSON payload."""

    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    error: str | None = None
    """Set with a non-zero exit code: the one-line reason printed on stderr."""


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (``error: ...``) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see --help)")


def new_parser(prog: str, description: str, *, epilog: str | None = None) -> Parser:
    parser = Parser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of text")
    return parser


def add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="tracking server URL (default: $MLFLOW_TRACKING_URI; credentials and CA come from the "
        "standard MLFLOW_TRACKING_* variables)",
    )


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """Collapse whitespace (multi-line server messages, tracebacks in bodies) and cap the length."""
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_CAUSES = (
    (re.compile(r"Connection refused", re.I), "connection refused"),
    (re.compile(r"Name or service not known|nodename nor servname|getaddrinfo failed", re.I), "unknown host"),
    (re.compile(r"timed out|ReadTimeout|ConnectTimeout", re.I), "timed out"),
    (re.compile(r"CERTIFICATE_VERIFY_FAILED|SSLError|certificate verify failed", re.I), "TLS verification failed"),
    (re.compile(r"Max retries exceeded|ConnectionError|NewConnectionError", re.I), "cannot connect"),
)
_API_URL = re.compile(r"API request to (\S+?)(?:/api/\S*|/ajax-api/\S*)? failed with exception")


def describe(exc: BaseException) -> tuple[str, int]:
    """One-line reason and exit code for an exception that escaped a tool."""
    if isinstance(exc, OpsError):
        return one_line(exc.reason), exc.exit_code
    text = str(exc)
    module = type(exc).__module__
    if module.startswith("mlflow"):
        message = getattr(exc, "message", text)
        url = _API_URL.search(message)
        if url is not None:
            cause = next((label for pattern, label in _CAUSES if pattern.search(message)), "request failed")
            return f"cannot reach the tracking server at {url.group(1)}: {cause}", EXIT_ERROR
        code = getattr(exc, "error_code", "")
        if "401" in message or "not authenticated" in message.lower():
            return (
                "the tracking server refused the credentials (401): check MLFLOW_TRACKING_USERNAME/PASSWORD",
                EXIT_ERROR,
            )
        if "403" in message or code == "PERMISSION_DENIED":
            return one_line(f"permission denied by the tracking server: {message}"), EXIT_ERROR
        return one_line(f"MLflow: {code + ': ' if code else ''}{message}"), EXIT_ERROR
    if module.startswith(("botocore", "boto3")):
        return one_line(f"AWS: {text}"), EXIT_ERROR
    if module.startswith(("requests", "urllib3")):
        cause = next((label for pattern, label in _CAUSES if pattern.search(text)), "request failed")
        return one_line(f"HTTP: {cause}: {text}"), EXIT_ERROR
    if module.startswith("yaml"):
        return one_line(f"invalid YAML: {text}"), EXIT_USAGE
    if isinstance(exc, OSError):
        return one_line(f"{type(exc).__name__}: {text}"), EXIT_ERROR
    return one_line(f"unexpected {type(exc).__name__}: {text}"), EXIT_ERROR


def emit(report: Report, as_json: bool, out: TextIO, err: TextIO) -> int:
    if as_json:
        payload = {"ok": report.exit_code == EXIT_OK, **report.data}
        if report.error is not None:
            payload.update(error=report.error, exit_code=report.exit_code)
        out.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    else:
        for line in report.lines:
            out.write(line + "\n")
    if report.error is not None:
        err.write(f"error: {report.error}\n")
    out.flush()
    return report.exit_code


def run_tool(
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], Report],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, run, print; turn every failure into one line and an exit code."""
    wants_json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help
        return stop.code if isinstance(stop.code, int) else EXIT_OK
    except OpsError as error:
        reason, code = describe(error)
        return emit(Report(exit_code=code, error=reason), wants_json, sys.stdout, sys.stderr)
    try:
        report = handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as error:
        if os.environ.get("MLFLOWOPS_DEBUG"):
            traceback.print_exc()
        reason, code = describe(error)
        data = error.data if isinstance(error, OpsError) else {}
        report = Report(data=data, exit_code=code, error=reason)
    return emit(report, bool(getattr(args, "json", False)), sys.stdout, sys.stderr)


def tracking_uri(explicit: str | None) -> str:
    """The tracking URI, refusing MLflow's silent fallback to a local ``./mlruns`` or SQLite
    store: an ops tool run without configuration must fail, not operate on an empty local store.
    Then one uncredentialed request (``preflight.check_tracking_server``) fails fast on a TLS
    certificate MLflow would retry for minutes, and on ``http://`` to an HTTPS-only server."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ConfigError("no tracking server: set MLFLOW_TRACKING_URI (or pass --tracking-uri)")
    if not re.match(r"^https?://", uri):
        raise ConfigError(f"the tracking URI must be an http(s) server URL, got {uri!r}")
    from .preflight import check_tracking_server  # imports MLflow: only once a server is named

    check_tracking_server(uri)
    return uri
