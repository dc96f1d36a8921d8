"""Run the studio's processes and keep them running; bin/run execs this. Standard library only.

    .venv/bin/python -m config.supervisor [--port 8000] [--logs var/log] [--grace 10] [--backoff 1]

Each process runs in its own process group. One that exits is restarted after a back-off (1, 2,
4 … 30 s), once what is left of its group is killed: a SIGKILLed Celery main leaves its prefork
child behind. After 5 fast failures in a row (each alive under 30 s) it is given up; the others
keep running. The state of every process is written to a JSON file that the project page reads
(training/workers.py). SIGINT, SIGTERM or SIGHUP stops them all: TERM to each, then KILL to each
group once they are gone or the grace is over.
"""

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("labelloop.supervisor")

RUNNING, RESTARTING, GIVEN_UP, STOPPED = "running", "restarting", "given up", "stopped"
WEB, TRAINING_WORKER, DEFAULT_WORKER = "web", "training-worker", "default-worker"
PREDICT_WORKER = "predict-worker"


@dataclass(frozen=True)
class Spec:
    """A process to supervise: its name, its command and the file its output goes to."""

    name: str
    command: list[str]
    log: Path


def studio_processes(*, port: int, logs: Path) -> list[Spec]:
    """bin/run's processes: gunicorn, the training worker (niced), the default worker with beat and
    the predict worker."""
    bin_dir = Path(sys.executable).parent
    worker = [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel", "INFO",
              "--concurrency", "1", "--pool", "prefork"]  # fmt: skip
    web = [str(bin_dir / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
           "--workers", "2", "--threads", "4", "--access-logfile", "-", "--error-logfile", "-"]  # fmt: skip
    return [
        Spec(WEB, web, logs / "web.log"),
        # Training runs one at a time at a lower CPU priority, so the web server and the database
        # keep the cores while a run goes; imports, exports and the sweeper (beat) run on the other.
        Spec(
            TRAINING_WORKER,
            ["nice", "-n", "10", *worker, "--queues", "training", "--hostname", "training@%h"],
            logs / "worker-training.log",
        ),
        Spec(
            DEFAULT_WORKER,
            [*worker, "--beat", "--queues", "default", "--hostname", "default@%h"],
            logs / "worker.log",
        ),
        # The prediction endpoint's model runs here, never in gunicorn: one prefork child, which
        # keeps each model it loaded between requests (a prediction takes milliseconds, so one
        # child answers hundreds a second; a second would hold a second copy of every model and
        # compete with the web server for the same 2 cores). Not niced: a request waits on it.
        Spec(
            PREDICT_WORKER,
            [*worker, "--queues", "predict", "--hostname", "predict@%h"],
            logs / "worker-predict.log",
        ),
    ]


def exit_reason(returncode: int) -> str:
    """A process's exit status in words: "exit code 1" or "signal SIGKILL"."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"signal {signal.Signals(-returncode).name}"
    except ValueError:
        return f"signal {-returncode}"


class _Child:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.process: subprocess.Popen | None = None
        self.state = STOPPED
        self.started_at = 0.0
        self.restart_at = 0.0
        self.restarts = 0
        self.fast_failures = 0  # in a row
        self.last_exit: str | None = None

    def note(self, message: str) -> None:
        # Also in the process's own log, where its last words are.
        logger.info("%s: %s", self.spec.name, message)
        with self.spec.log.open("a") as log:
            log.write(f"--- supervisor: {message} ---\n")

    def as_json(self) -> dict:
        alive = self.process is not None and self.state == RUNNING
        return {
            "pid": self.process.pid if alive else None,
            "state": self.state,
            "restarts": self.restarts,
            "fast_failures": self.fast_failures,
            "last_exit": self.last_exit,
            "log": str(self.spec.log),
        }


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, signum)


class Supervisor:
    """Starts the specs' processes, restarts those that exit, and stops them all on SIGINT or SIGTERM."""

    def __init__(
        self,
        specs: list[Spec],
        *,
        state_path: Path,
        grace: float = 10.0,
        backoff: float = 1.0,
        backoff_cap: float = 30.0,
        fast_seconds: float = 30.0,
        max_fast_failures: int = 5,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.state_path = Path(state_path)
        self.grace, self.backoff, self.backoff_cap = grace, backoff, backoff_cap
        self.fast_seconds, self.max_fast_failures = fast_seconds, max_fast_failures
        self.stop_signal: int | None = None

    def run(self) -> int:
        """Supervise until SIGINT, SIGTERM or SIGHUP (0), or until every process was given up (1)."""
        # SIGHUP too: the processes are in sessions of their own, so a closed terminal reaches only this one.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._request_stop)
        for child in self.children:
            child.spec.log.parent.mkdir(parents=True, exist_ok=True)
            child.spec.log.write_text("")  # a fresh log per supervisor, as bin/run did
            self._start(child)
        self._write_state()
        while self.stop_signal is None:
            if any([self._check(child) for child in self.children]):
                self._write_state()
            if all(child.state == GIVEN_UP for child in self.children):
                logger.error("every process was given up; stopping")
                self._write_state(final=True)
                return 1
            time.sleep(0.1)
        logger.info("%s received: stopping", signal.Signals(self.stop_signal).name)
        self._stop_all()
        self._write_state(final=True)
        return 0

    def _request_stop(self, signum: int, frame) -> None:
        self.stop_signal = signum

    def _start(self, child: _Child) -> None:
        with child.spec.log.open("ab") as log:
            # Its own session, hence its own process group: a terminal's Ctrl-C reaches only the
            # supervisor, and the group can be killed whole.
            child.process = subprocess.Popen(
                child.spec.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.state, child.started_at = RUNNING, time.monotonic()
        logger.info("%s: started, pid %s", child.spec.name, child.process.pid)

    def _check(self, child: _Child) -> bool:
        """Handle a process that exited, or restart one whose back-off is over; True when it changed."""
        if child.state == RESTARTING and time.monotonic() >= child.restart_at:
            child.restarts += 1
            self._start(child)
            return True
        if child.state != RUNNING or child.process.poll() is None:
            return False
        lived = time.monotonic() - child.started_at
        child.last_exit = exit_reason(child.process.returncode)
        # Its children (a Celery prefork child, say) outlive it in its group; they would hold the
        # task, the port or memory while a new one starts.
        _signal_group(child.process.pid, signal.SIGKILL)
        child.fast_failures = child.fast_failures + 1 if lived < self.fast_seconds else 0
        if child.fast_failures >= self.max_fast_failures:
            child.state = GIVEN_UP
            child.note(
                f"exited ({child.last_exit}, ran {lived:.1f} s): given up after "
                f"{child.fast_failures} fast failures in a row"
            )
            return True
        delay = min(self.backoff_cap, self.backoff * 2 ** max(child.fast_failures - 1, 0))
        child.state, child.restart_at = RESTARTING, time.monotonic() + delay
        child.note(f"exited ({child.last_exit}, ran {lived:.1f} s): restarting in {delay:g} s")
        return True

    def _stop_all(self) -> None:
        running = [child for child in self.children if child.state == RUNNING]
        # TERM to each main process only: Celery's warm shutdown and gunicorn's graceful one stop
        # their own children (TERM to the whole group killed Celery's pool child mid-task).
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(c.process.poll() is None for c in running):
            time.sleep(0.1)
        # Past the grace, or once every main process is gone: KILL whatever is left of each group
        # (it ignored TERM, or outlived its parent).
        for child in running:
            if child.process.poll() is None:
                logger.warning("%s: still running after %g s: killing it", child.spec.name, self.grace)
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
            child.last_exit = exit_reason(child.process.returncode)
        for child in self.children:
            child.state = STOPPED

    def _write_state(self, *, final: bool = False) -> None:
        state = {
            "supervisor_pid": os.getpid(),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stopped": final,
            "processes": {child.spec.name: child.as_json() for child in self.children},
        }
        # Atomically: the web process reads it at any moment.
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, self.state_path)


def supervise(specs: list[Spec], *, state_path: Path, **options) -> int:
    """Run and keep running the processes `specs`; options as Supervisor's. Returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(message)s", datefmt="%H:%M:%S")
    return Supervisor(specs, state_path=state_path, **options).run()


def main(argv: list[str] | None = None) -> int:
    """The command line: supervise the studio's processes."""
    var_dir = Path(os.environ.get("LABELLOOP_VAR_DIR") or "var")
    parser = argparse.ArgumentParser(prog="python -m config.supervisor", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABELLOOP_PORT") or 8000))
    parser.add_argument("--logs", type=Path, default=var_dir / "log", help="folder of the processes' logs")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between TERM and KILL at stop")
    parser.add_argument("--backoff", type=float, default=1.0, help="seconds before a first restart")
    state = os.environ.get("LABELLOOP_SUPERVISOR_STATE") or var_dir / "supervisor.json"
    parser.add_argument("--state", type=Path, default=Path(state), help="the JSON file of their state")
    args = parser.parse_args(argv)
    return supervise(
        studio_processes(port=args.port, logs=args.logs),
        state_path=args.state,
        grace=args.grace,
        backoff=args.backoff,
    )


if __name__ == "__main__":
    sys.exit(main())
