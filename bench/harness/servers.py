"""The server processes of a benchmark: gunicorn (as bin/run serves the studio) and a Celery worker,
each a subprocess logging to a file of the var folder, started, waited for and stopped (TERM, then
KILL)."""

import contextlib
import http.client
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO
from bench.harness.cpu import Proc, processes

BIN = Path(sys.executable).parent  # .venv/bin, not resolved: the venv's own scripts live there


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Process:
    """A server subprocess of the bench, logging to `log_path`; stop() ends it (TERM, then KILL)."""

    stop_timeout = 20
    log_path: Path
    proc: subprocess.Popen | None
    _log: Any

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()


class Gunicorn(_Process):
    """gunicorn serving config.wsgi on a free loopback port; start() returns once it answers and
    every worker is up."""

    def __init__(self, *, workers: int, env: dict, log_path: Path, threads: int = 1):
        self.workers = workers
        self.threads = threads
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def command(self) -> list[str]:
        # --timeout 300: a sync worker is killed after --timeout seconds without a heartbeat, and it
        # sends none while it streams a response; the default 30 s would cut a slow export short.
        return [
            str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--threads", str(self.threads), "--timeout", "300",
            "--log-level", "warning",
        ]  # fmt: skip

    def start(self) -> None:
        self.port = free_port()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/accounts/login/")
                status = conn.getresponse().status
                conn.close()
                if status < 500 and len(self.worker_pids()) >= self.workers:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def worker_pids(self, procs: dict[int, Proc] | None = None) -> list[int]:
        if self.proc is None:
            return []
        procs = processes() if procs is None else procs
        return sorted(pid for pid, proc in procs.items() if proc.ppid == self.proc.pid)

    def pids(self, procs: dict[int, Proc] | None = None) -> set[int]:
        """The master and its workers: the gunicorn part of a CpuMeter."""
        return {self.proc.pid, *self.worker_pids(procs)} if self.proc else set()


class CeleryWorker(_Process):
    """One Celery worker (solo pool) on the bench's own filesystem broker, for the HTTP import:
    uploads past the synchronous row limit become jobs that a worker runs. The embedded broker
    is polled every 0.1 s, which the HTTP import's time includes."""

    stop_timeout = 30

    def __init__(self, *, env: dict, log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        command = [
            str(BIN / "celery"), "-A", "config", "worker", "--pool", "solo", "--concurrency", "1",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self.log_tail()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker was not ready within {timeout:.0f} s:\n{self.log_tail()}")
