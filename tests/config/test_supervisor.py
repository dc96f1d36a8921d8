"""config/supervisor.py on real processes: small shell commands, then the studio itself (gunicorn
and both Celery workers on the test database) with its workers SIGKILLed while it serves."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.training.projects import digits_project
from tests.workers import ROOT, send, subprocess_env, wait_until
from training.models import TrainingRun


def _eventually(predicate, seconds: float, what: str):
    """Poll `predicate` until it returns something true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


def _read(path: Path) -> str:
    """The file's text, or "" while it does not exist."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _starts(path: Path) -> int:
    """How many times a command that appends "start" to `path` started."""
    return _read(path).count("start")


def _live_members(pgid: int) -> list[int]:
    """The pids of process group `pgid` that still run (zombies are dead: nothing here reaps them)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            members.append(int(stat.parent.name))
    return members


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


class Supervised:
    """A supervisor process and the state file it writes; stopped (and its groups killed) at teardown."""

    def __init__(self, process: subprocess.Popen, state_path: Path, log: Path) -> None:
        self.process, self.state_path, self.log = process, state_path, log
        self.groups: set[int] = set()  # every process group it ever ran, for the final check

    def state(self) -> dict:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        self.groups |= {p["pid"] for p in state["processes"].values() if p["pid"]}
        return state

    def process_state(self, name: str) -> dict:
        return self.state().get("processes", {}).get(name, {})

    def pid(self, name: str, *, other_than: int | None = None) -> int:
        """The pid of `name` once it runs (and is not `other_than`)."""

        def running_pid():
            process = self.process_state(name)
            return process.get("state") == "running" and process["pid"] != other_than and process["pid"]

        return _eventually(
            running_pid, 60, f"{name} running (other than {other_than})\n{self.log.read_text()}"
        )

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pgid in self.groups:
            for pid in _live_members(pgid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def supervise(tmp_path):
    """`supervise({name: shell command}, **options)`: a supervisor of those commands (logs in tmp_path)."""
    started = []

    def start(commands: dict[str, str], **options) -> Supervised:
        state_path, log = tmp_path / "state.json", tmp_path / "supervisor.log"
        specs = [(name, command, str(tmp_path / f"{name}.log")) for name, command in commands.items()]
        script = (
            "import sys\nfrom pathlib import Path\nfrom config.supervisor import Spec, supervise\n"
            f"specs = [Spec(name, ['sh', '-c', command], Path(log)) for name, command, log in {specs!r}]\n"
            f"sys.exit(supervise(specs, state_path=Path({str(state_path)!r}), **{options!r}))\n"
        )
        process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=log.open("w"))
        started.append(Supervised(process, state_path, log))
        return started[-1]

    yield start
    for supervised in started:
        supervised.cleanup()


def test_a_process_that_exits_is_restarted_once_its_group_is_killed(supervise, tmp_path):
    # The first start leaves a child in its group (as a SIGKILLed Celery main leaves its prefork
    # child) and exits 3; the second stays up.
    first = f"if [ -e {tmp_path}/again ]; then exec sleep 300; fi; touch {tmp_path}/again; "
    first += f"sleep 300 & echo $! > {tmp_path}/orphan; sleep 0.3; exit 3"
    supervised = supervise({"job": first}, backoff=0.2)
    old = supervised.pid("job")
    orphan = int(_eventually(lambda: _read(tmp_path / "orphan").strip(), 10, "the child's pid"))

    new = supervised.pid("job", other_than=old)
    assert not _running(orphan), "the exited process's child was left running"
    job = supervised.process_state("job")
    assert (job["restarts"], job["last_exit"]) == (1, "exit code 3")
    assert "job: exited (exit code 3, ran " in supervised.log.read_text()
    assert "exited (exit code 3" in (tmp_path / "job.log").read_text()
    assert _running(new)


def test_five_fast_failures_in_a_row_give_the_process_up_and_the_others_keep_running(supervise, tmp_path):
    commands = {"broken": f"echo start >> {tmp_path}/starts; exit 1", "steady": "exec sleep 300"}
    supervised = supervise(commands, backoff=0.05)  # then 0.1, 0.2, 0.4 s
    steady = supervised.pid("steady")

    _eventually(lambda: supervised.process_state("broken").get("state") == "given up", 30, "given up")
    time.sleep(1.5)  # past the next back-off, 0.8 s, were there one
    assert _starts(tmp_path / "starts") == 5
    broken = supervised.process_state("broken")
    assert broken == {**broken, "pid": None, "restarts": 4, "fast_failures": 5, "last_exit": "exit code 1"}
    assert supervised.process_state("steady")["pid"] == steady and _running(steady)
    assert supervised.process.poll() is None


def test_a_process_that_lived_long_enough_is_never_given_up(supervise, tmp_path):
    # Each life (0.3 s) is longer than a fast failure's (0.2 s here): the count starts again.
    command = f"echo start >> {tmp_path}/starts; sleep 0.3; exit 1"
    supervised = supervise({"slow": command}, backoff=0.05, fast_seconds=0.2)

    _eventually(lambda: _starts(tmp_path / "starts") >= 7, 30, "seven starts")
    assert supervised.process_state("slow")["state"] != "given up"


def test_sigint_stops_every_group_and_kills_what_ignores_term_after_the_grace(supervise, tmp_path):
    commands = {
        "polite": f"sleep 300 & echo $! > {tmp_path}/polite; wait",
        # Its child inherits the ignored TERM.
        "stubborn": f"trap '' TERM; sleep 300 & echo $! > {tmp_path}/stubborn; wait",
    }
    supervised = supervise(commands, grace=1.5)
    groups = {name: supervised.pid(name) for name in commands}
    children = [int(_eventually(lambda n=name: _read(tmp_path / n).strip(), 10, name)) for name in commands]

    started = time.monotonic()
    assert supervised.stop(signal.SIGINT) == 0
    took = time.monotonic() - started
    assert 1.5 <= took < 6, f"stopped in {took:.1f} s with a 1.5 s grace"
    assert not any(_live_members(pgid) for pgid in groups.values()), "a process outlived the supervisor"
    assert not any(_running(pid) for pid in children)
    state = supervised.state()
    assert state["stopped"] and {p["state"] for p in state["processes"].values()} == {"stopped"}
    assert state["processes"]["polite"]["last_exit"] == "signal SIGTERM"
    assert state["processes"]["stubborn"]["last_exit"] == "signal SIGKILL"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except OSError as error:  # refused, reset, timed out, or an HTTP error status
        return repr(error)


class _Prober(threading.Thread):
    """GETs `url` every 0.2 s until stopped, keeping every answer (a status or an error)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.answers, self.stopped = url, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.answers.append(_status(self.url))
            self.stopped.wait(0.2)

    def stop(self) -> list:
        self.stopped.set()
        self.join(timeout=15)
        return self.answers


@pytest.fixture
def studio(tmp_path, settings):
    """The studio under the supervisor's command line, on the test database, with var/ in tmp_path."""
    var = tmp_path / "var"
    broker = var / "celery"
    # The test dispatches into the supervised workers' broker folders (their LABELLOOP_VAR_DIR).
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
    }
    env = subprocess_env(
        LABELLOOP_VAR_DIR=str(var),
        CELERY_BROKER_URL="filesystem://",
        LABELLOOP_RUN_HEARTBEAT_SECONDS="1",
        LABELLOOP_RUN_STALE_SECONDS="3",
    )
    env.pop("LABELLOOP_SUPERVISOR_STATE", None)
    port, log = _free_port(), tmp_path / "supervisor.log"
    # A first restart 4 s after a kill: past LABELLOOP_RUN_STALE_SECONDS, so the restarted
    # training worker's sweep at worker_ready finds the killed run stale.
    command = [sys.executable, "-m", "config.supervisor", "--port", str(port), "--backoff", "4"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log.open("w"))
    supervised = Supervised(process, var / "supervisor.json", log)
    supervised.url, supervised.logs = f"http://127.0.0.1:{port}/accounts/login/", var / "log"
    yield supervised
    supervised.cleanup()


def _ready(log: Path, times: int = 1) -> bool:
    return log.exists() and log.read_text().count(" ready.") >= times


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_studio_keeps_serving_while_each_worker_is_sigkilled_and_restarted(studio):
    project = digits_project(n=400)  # while the studio starts
    training_log, default_log = studio.logs / "worker-training.log", studio.logs / "worker.log"
    _eventually(lambda: _status(studio.url) == 200, 90, f"the login page\n{studio.log.read_text()}")
    _eventually(lambda: _ready(training_log) and _ready(default_log), 90, "both workers ready")
    web = studio.pid("web")
    prober = _Prober(studio.url)
    prober.start()

    run = TrainingRun.objects.create(project=project, trigger="test")
    send(run, "filesystem://")
    run = wait_until(run, lambda r: r.phase == "fit" or not r.is_open, seconds=120)
    assert run.status == "running", f"the run ended ({run.status}) before it could be killed"
    trainer = studio.pid("training-worker")
    assert len(_live_members(trainer)) >= 2, "no prefork child beside the worker's main process"
    os.kill(trainer, signal.SIGKILL)
    studio.pid("training-worker", other_than=trainer)
    assert not _live_members(trainer), "the killed worker's prefork child was left running"
    run = wait_until(run, lambda r: not r.is_open, seconds=60)
    assert (run.status, run.error) == ("failed", "worker lost")
    _eventually(lambda: _ready(training_log, 2), 60, "the restarted training worker ready")
    time.sleep(1)  # a redelivered message would be received now
    assert training_log.read_text().count("training.tasks.training_run_execute[") == 1, "redelivered"
    trained = studio.process_state("training-worker")
    assert (trained["restarts"], trained["last_exit"]) == (1, "signal SIGKILL")

    default = studio.pid("default-worker")
    os.kill(default, signal.SIGKILL)
    studio.pid("default-worker", other_than=default)
    assert not _live_members(default), "the killed worker's children (pool, beat) were left running"
    _eventually(lambda: _ready(default_log, 2), 60, "the restarted default worker ready")

    answers = prober.stop()
    assert len(answers) > 20 and set(answers) == {200}, answers
    assert studio.pid("web") == web and studio.process_state("web")["restarts"] == 0
    assert studio.stop(signal.SIGINT) == 0
    assert not any(_live_members(pgid) for pgid in studio.groups), "a process outlived the supervisor"
