"""A small process supervisor: what Kubernetes does for the cloud target, for one machine.

It runs the plan (``run/plan.json``): starts each step once its dependencies are ready, waits
for readiness probes, runs one-shot jobs (bootstrap, migrations, bucket), and afterwards keeps
every service alive: a service that exits or fails its liveness probe is restarted with
exponential backoff (CrashLoopBackOff), and its process group is killed first so no orphan
(a PostgreSQL backend, a uvicorn worker) keeps a port or shared memory.

Each child runs in its own session/process group with a clean environment (nothing from the
caller's shell leaks into the servers), stdout/stderr appended to its log file.

Started detached by ``LocalPlatform.start()``: ``python -m localplatform.supervisor <state>``.
SIGTERM/SIGINT stop everything in reverse order; the status file tells others what runs where.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from .layout import StateLayout
from .plan import Check, Plan, Step, load_plan
from .status import ComponentState, ComponentStatus, PlatformStatus, process_start_time, write_status
from .users import open_log

LOOP_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 20.0
LIVE_PERIOD_S = 5.0
LIVE_FAILURE_THRESHOLD = 3
EARLY_EXIT_LIMIT = 3
"""A service that exits this many times before it was ever ready fails the start."""
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run_check(check: Check) -> bool:
    try:
        if check.kind == "tcp":
            with socket.create_connection((check.host, check.port), timeout=check.timeout_s):
                return True
        if check.kind == "http":
            context = ssl.create_default_context(cafile=check.ca_file) if check.ca_file else None
            with urllib.request.urlopen(check.url, timeout=check.timeout_s, context=context) as response:  # noqa: S310
                return int(response.status) == 200
        if check.kind == "command":
            result = subprocess.run(list(check.argv), capture_output=True, timeout=check.timeout_s, check=False)
            return result.returncode == 0
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return False
    return False


@dataclass
class Runner:
    step: Step
    status: ComponentStatus
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_at: float | None = None
    next_start_at: float = 0.0
    early_exits: int = 0
    ever_ready: bool = False
    held: bool = False
    live_failures: int = 0
    next_live_at: float = 0.0
    pending_rerun: bool = False


class Supervisor:
    def __init__(self, layout: StateLayout, plan: Plan) -> None:
        self.layout = layout
        self.plan = plan
        self.runners = {
            step.name: Runner(step, ComponentStatus(step.name, step.kind, port=step.port, log=step.log))
            for step in plan.steps
        }
        self.status = PlatformStatus(
            state="starting",
            supervisor_pid=os.getpid(),
            supervisor_start_time=process_start_time(os.getpid()),
            components={name: runner.status for name, runner in self.runners.items()},
        )
        self.stopping = False
        self.dirty = True

    # -- logging and status -------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    def set_state(self, runner: Runner, state: ComponentState, message: str = "") -> None:
        runner.status.state = state
        runner.status.message = message
        self.dirty = True
        self.say(f"{runner.step.name}: {state}{' - ' + message if message else ''}")

    def flush_status(self) -> None:
        if self.dirty:
            write_status(self.layout.status_file, self.status)
            self.dirty = False

    # -- processes ----------------------------------------------------------------------------
    def spawn(self, runner: Runner) -> None:
        step = runner.step
        env = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/"), **step.env}
        log_path = Path(step.log)
        log = open_log(log_path)  # handed to the child, closed below
        user: int | None = None
        group: int | None = None
        extra_groups: list[int] | None = None
        if step.user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(step.user)
            os.chown(log_path, entry.pw_uid, entry.pw_gid)  # nginx reopens /dev/stdout by path
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        attempt = runner.status.restarts + 1
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {step.name} (attempt {attempt}) ===\n".encode())
        log.flush()
        try:
            runner.proc = subprocess.Popen(
                list(step.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=step.cwd,
                env=env,
                start_new_session=True,
                umask=0o077,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        except OSError as error:
            log.close()
            runner.proc = None
            self.fail(f"{step.name} could not start: {error}")
            return
        log.close()
        assert runner.proc is not None
        runner.started_at = time.monotonic()
        runner.ready_at = None
        runner.live_failures = 0
        runner.status.pid = runner.proc.pid
        runner.status.start_time = process_start_time(runner.proc.pid)
        self.set_state(runner, "starting" if step.kind == "service" else "running")

    def kill_group(self, pid: int, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def stop_runner(self, runner: Runner, final_state: ComponentState = "stopped") -> None:
        proc = runner.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(getattr(signal, runner.step.stop_signal))
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.say(f"{runner.step.name}: did not stop in {STOP_TIMEOUT_S:.0f}s, killing")
        if proc is not None:
            self.kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        runner.proc = None
        runner.status.pid = None
        runner.status.start_time = None
        self.set_state(runner, final_state)

    # -- state machine ------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        if self.status.state == "starting":
            self.status.state = "failed"
            self.status.message = message
            self.dirty = True
            self.say(f"FAILED: {message}")

    def deps_met(self, step: Step) -> bool:
        for name in step.after:
            dep = self.runners[name].status.state
            wanted = "running" if self.runners[name].step.kind == "service" else "done"
            if dep != wanted:
                return False
        return True

    def tick(self) -> None:
        now = time.monotonic()
        self.handle_control()
        for runner in self.runners.values():
            self.tick_runner(runner, now)
        if self.status.state == "starting" and all(
            r.status.state == ("running" if r.step.kind == "service" else "done") for r in self.runners.values()
        ):
            self.status.state = "ready"
            self.status.message = ""
            self.dirty = True
            self.say("platform ready")

    def tick_runner(self, runner: Runner, now: float) -> None:
        step, state = runner.step, runner.status.state
        if runner.held:
            return
        if state == "waiting":
            if self.deps_met(step) and (step.kind == "service" or self.status.state in ("starting", "ready")):
                self.spawn(runner)
            return
        if state == "restarting" and now >= runner.next_start_at:
            self.spawn(runner)
            return
        proc = runner.proc
        if proc is None:
            return
        code = proc.poll()
        if code is not None:
            self.on_exit(runner, code, now)
            return
        if step.kind == "job":
            return
        if state == "starting":
            if step.ready is None or run_check(step.ready):
                runner.ready_at = now
                runner.next_live_at = now + LIVE_PERIOD_S
                came_back = runner.ever_ready
                runner.ever_ready = True
                self.set_state(runner, "running")
                if came_back:
                    for job in step.rerun_after_restart:
                        self.runners[job].status.state = "waiting"
                        self.dirty = True
            elif now - runner.started_at > step.ready_timeout_s:
                if self.status.state == "starting":
                    self.fail(f"{step.name} was not ready after {step.ready_timeout_s:.0f}s (see {step.log})")
                else:
                    self.say(f"{step.name}: not ready after {step.ready_timeout_s:.0f}s, restarting")
                    self.kill_group(proc.pid)
            return
        if state == "running" and step.live is not None and now >= runner.next_live_at:
            runner.next_live_at = now + LIVE_PERIOD_S
            if run_check(step.live):
                runner.live_failures = 0
            else:
                runner.live_failures += 1
                self.say(f"{step.name}: liveness probe failed ({runner.live_failures}/{LIVE_FAILURE_THRESHOLD})")
                if runner.live_failures >= LIVE_FAILURE_THRESHOLD:
                    self.kill_group(proc.pid)

    def on_exit(self, runner: Runner, code: int, now: float) -> None:
        step = runner.step
        runner.status.last_exit = code
        assert runner.proc is not None
        self.kill_group(runner.proc.pid)
        runner.proc = None
        runner.status.pid = None
        runner.status.start_time = None
        if step.kind == "job":
            if code == 0:
                self.set_state(runner, "done")
            else:
                self.set_state(runner, "failed", f"exit {code}")
                self.fail(f"{step.name} failed with exit code {code} (see {step.log})")
            return
        if not runner.ever_ready:
            runner.early_exits += 1
            if self.status.state == "starting" and runner.early_exits >= EARLY_EXIT_LIMIT:
                self.set_state(runner, "failed", f"exit {code}")
                self.fail(f"{step.name} exited with code {code} before becoming ready (see {step.log})")
                return
        healthy_for = now - runner.ready_at if runner.ready_at is not None else 0.0
        backoff = 1.0 if healthy_for > HEALTHY_RESET_S else min(BACKOFF_MAX_S, 2.0 ** min(runner.status.restarts, 5))
        runner.status.restarts += 1
        runner.next_start_at = now + backoff
        self.set_state(runner, "restarting", f"exited with {code}; restart in {backoff:.0f}s")

    def handle_control(self) -> None:
        directory = self.layout.control_dir
        if not directory.is_dir():
            return
        for request in directory.iterdir():
            action = request.read_text().strip()
            request.unlink()
            runner = self.runners.get(request.name)
            if runner is None or runner.step.kind != "service":
                continue
            if action == "stop":
                runner.held = True
                self.stop_runner(runner)
            elif action == "start" and runner.held:
                runner.held = False
                self.spawn(runner)

    def shutdown(self) -> None:
        self.status.state = "stopping" if self.status.state != "failed" else "failed"
        self.dirty = True
        self.flush_status()
        for runner in reversed(list(self.runners.values())):
            if runner.proc is not None:
                self.stop_runner(runner)
        if self.status.state != "failed":
            self.status.state = "stopped"
        self.status.supervisor_pid = None
        self.status.supervisor_start_time = None
        self.dirty = True
        self.flush_status()

    def run(self) -> int:
        def request_stop(signum: int, frame: FrameType | None) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.say(f"supervisor {os.getpid()} running {len(self.runners)} steps")
        self.layout.supervisor_pid_file.write_text(f"{os.getpid()}\n")
        self.flush_status()
        while not self.stopping and self.status.state != "failed":
            self.tick()
            self.flush_status()
            time.sleep(LOOP_INTERVAL_S)
        failed = self.status.state == "failed"
        self.shutdown()
        self.layout.supervisor_pid_file.unlink(missing_ok=True)
        self.say("supervisor exiting")
        return 1 if failed else 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m localplatform.supervisor <state-dir>", file=sys.stderr)
        return 2
    layout = StateLayout(Path(argv[0]).resolve())
    return Supervisor(layout, load_plan(layout.plan_file)).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
