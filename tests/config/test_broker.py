"""The embedded broker (config/broker.py).

Each race runs deterministically: a thread is held at a chosen file operation while another one
acts. Every race test runs against stock kombu 5.7 (`stock`, expected to fail where stock loses the
race, strict) and against ours. Then several producer and consumer processes share one set of folders.
"""

import builtins
import contextlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty

import kombu
import pytest
from kombu.pidbox import Mailbox
from kombu.transport import filesystem, virtual

from config import broker

STOCK = "kombu.transport.filesystem:Transport"
OURS = "config.broker:Transport"
PAYLOAD = {"body": "x" * 2000, "properties": {"delivery_tag": "1"}, "headers": {}}


def stock(reason: str, *values, test_id: str = "stock"):
    """Stock kombu's transport as a parameter, expected to lose the race (strict: it must fail)."""
    return pytest.param(STOCK, *values, id=test_id, marks=pytest.mark.xfail(strict=True, reason=reason))


STOCK_IS_SAFE_TOO = pytest.param(STOCK, id="stock")
OURS_PARAM = pytest.param(OURS, id="ours")


def broker_options(root: Path) -> dict:
    """The settings' filesystem transport options, on folders under `root`."""
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "store_processed": False,
        "polling_interval": 0.01,
    }


@pytest.fixture(autouse=True)
def fresh_broker_state(monkeypatch):
    # Each transport class keeps declared bindings per process; a binding one test declared would
    # stop the next test's channel from writing the exchange table into its own folders.
    monkeypatch.setattr(filesystem.Transport, "global_state", virtual.BrokerState())
    monkeypatch.setattr(broker.Transport, "global_state", virtual.BrokerState())


@pytest.fixture
def options(tmp_path, monkeypatch):
    """Transport options under tmp_path, with the folders made (stock kombu needs them made)."""
    options = broker_options(tmp_path / "celery")
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        os.makedirs(options[key])
    # Stock kombu claims into the system temp folder; keep it under tmp_path (the same filesystem).
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    return options


@pytest.fixture
def connect(options):
    """`connect(transport)`: a kombu Connection on the test's folders; each thread takes its own."""
    opened = []

    def connect(transport: str) -> kombu.Connection:
        connection = kombu.Connection(transport=transport, transport_options=options)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.release()


def get_or_none(channel, queue: str):
    try:
        return channel._get(queue)
    except Empty:
        return None


# Holding a thread at a file operation ---------------------------------------------------------


class Step(threading.Thread):
    """Runs `fn` in a thread named `name`, keeping its result or its exception."""

    def __init__(self, name: str, fn: Callable) -> None:
        super().__init__(name=name, daemon=True)
        self.fn, self.result, self.error = fn, None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:
            self.error = exc

    def outcome(self, timeout: float = 10):
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} is stuck"
        if self.error is not None:
            raise self.error
        return self.result


class Hold:
    """Holds thread `thread` at its first `at` ("open" or "listdir") whose path and mode match `when`.

    At an open the thread stops right after the open (the file exists, empty or truncated); with
    `halfway` it stops after writing half of its first write instead.
    """

    def __init__(self, thread: str, at: str, when: Callable[[str, str], bool], halfway: bool) -> None:
        self.thread, self.at, self.when, self.halfway = thread, at, when, halfway
        self.used = False
        self.reached, self.released = threading.Event(), threading.Event()

    def matches(self, at: str, path, mode: str) -> bool:
        if self.used or at != self.at or threading.current_thread().name != self.thread:
            return False
        if not isinstance(path, str | os.PathLike) or not self.when(str(os.fspath(path)), mode):
            return False
        self.used = True
        return True

    def pause(self) -> None:
        self.reached.set()
        self.released.wait(10)

    def wait_reached(self) -> None:
        assert self.reached.wait(10), f"{self.thread} never reached its {self.at}"

    def release(self) -> None:
        self.released.set()


class _HalfWriter:
    """A file whose first write stops halfway, on disk, until its Hold is released."""

    def __init__(self, file, hold: Hold) -> None:
        self._file, self._hold, self._written = file, hold, False

    def write(self, data) -> int:
        if self._written:
            return self._file.write(data)
        self._written = True
        half = len(data) // 2
        count = self._file.write(data[:half])
        self._file.flush()
        self._hold.pause()
        return count + self._file.write(data[half:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def __getattr__(self, name):
        return getattr(self._file, name)


class Race:
    """Holds named threads at chosen file operations, so that an interleaving runs the same way every time."""

    def __init__(self, monkeypatch) -> None:
        self.holds: list[Hold] = []
        self.steps: list[Step] = []
        real_open, real_listdir = builtins.open, os.listdir

        def held_open(file, mode="r", *args, **kwargs):
            opened = real_open(file, mode, *args, **kwargs)
            for hold in self.holds:
                if hold.matches("open", file, mode):
                    if hold.halfway:
                        return _HalfWriter(opened, hold)
                    hold.pause()
            return opened

        def held_listdir(path="."):
            names = real_listdir(path)
            for hold in self.holds:
                if hold.matches("listdir", path, ""):
                    hold.pause()
            return names

        # Path.open goes through io.open; module code through builtins.open.
        monkeypatch.setattr(builtins, "open", held_open)
        monkeypatch.setattr(io, "open", held_open)
        monkeypatch.setattr(os, "listdir", held_listdir)

    def hold(self, thread: str, when=lambda path, mode: True, *, at="open", halfway=False) -> Hold:
        hold = Hold(thread, at, when, halfway)
        self.holds.append(hold)
        return hold

    def step(self, name: str, fn: Callable) -> Step:
        step = Step(name, fn)
        self.steps.append(step)
        step.start()
        return step

    def end(self) -> None:
        for hold in self.holds:
            hold.release()
        for step in self.steps:
            step.join(10)


@pytest.fixture
def race(monkeypatch):
    race = Race(monkeypatch)
    yield race
    race.end()


def creates_message(path: str, mode: str) -> bool:
    return mode[0] in "wx" and ".msg" in os.path.basename(path)


def writes_table(path: str, mode: str) -> bool:
    # An open of the table (stock) or of its replacement (ours) for writing; not of the lock file ("ab").
    return (mode[0] in "wx" or "+" in mode) and ".exchange" in os.path.basename(path)


def reads_message(path: str, mode: str) -> bool:
    return mode == "rb" and path.endswith(".msg")


# Messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transport", [stock("creates the message in the queue folder, then writes it: half is read"), OURS_PARAM]
)
def test_a_consumer_never_reads_a_message_still_being_written(connect, race, transport):
    writer, consumer = connect(transport).default_channel, connect(transport).default_channel
    held = race.hold("writer", creates_message, halfway=True)
    writing = race.step("writer", lambda: writer._put("default", PAYLOAD))
    held.wait_reached()

    with pytest.raises(Empty):
        consumer._get("default")

    held.release()
    writing.outcome()
    assert consumer._get("default") == PAYLOAD


@pytest.mark.parametrize(
    "transport", [stock("writes the message file in the queue folder itself"), OURS_PARAM]
)
def test_a_message_being_written_is_never_in_the_queue_folder(connect, race, options, transport):
    queue_folder = Path(options["data_folder_out"])
    tmp_folder = queue_folder.parent / "tmp"
    channel = connect(transport).default_channel
    held = race.hold("writer", creates_message, halfway=True)
    writing = race.step("writer", lambda: channel._put("default", PAYLOAD))
    held.wait_reached()

    during = os.listdir(queue_folder)

    held.release()
    writing.outcome()
    after = os.listdir(queue_folder)
    assert during == []
    assert len(after) == 1 and after[0].endswith(".default.msg")
    assert not tmp_folder.exists() or os.listdir(tmp_folder) == []


@pytest.mark.parametrize("transport", [STOCK_IS_SAFE_TOO, OURS_PARAM])
def test_queue_files_are_matched_by_their_exact_name(connect, options, transport):
    """kombu 5.7 already matches `name.partition('.')[2] == f'{queue}.msg'`, so stock passes too.

    Older kombu matched a substring and consumed `….default.msg.tmp`; this guards ours against that.
    """
    queue_folder = Path(options["data_folder_in"])
    others = ["1_a.default.msg.tmp", "1_b.mydefault.msg", "1_c.default.msgx", "1_d.other.default.msg"]
    for name in others:
        (queue_folder / name).write_text(json.dumps({"not": "default"}))
    channel = connect(transport).default_channel

    assert get_or_none(channel, "default") is None
    channel._put("default", PAYLOAD)

    assert channel._size("default") == 1
    assert channel._get("default") == PAYLOAD
    assert sorted(os.listdir(queue_folder)) == others


@pytest.mark.parametrize("moment", ["after-listing", "after-opening"])
@pytest.mark.parametrize("transport", [STOCK_IS_SAFE_TOO, OURS_PARAM])
def test_two_consumers_never_get_the_same_message(connect, race, transport, moment):
    """The first consumer is held after listing the queue, or after opening the file it claimed.

    Stock passes here: its system temp folder shares tmp_path's filesystem, so shutil.move is a rename
    too. Across filesystems it is a copy and a delete (see the next test); a second consumer copying
    over the first one's copy as it reads needs three holds inside shutil, which this does not fake.
    """
    producer, first, second = (connect(transport).default_channel for _ in range(3))
    producer._put("default", PAYLOAD)
    if moment == "after-listing":
        held = race.hold("first", at="listdir")
    else:
        held = race.hold("first", reads_message)
    first_get = race.step("first", lambda: get_or_none(first, "default"))
    held.wait_reached()

    second_got = get_or_none(second, "default")

    held.release()
    got = [first_get.outcome(), second_got]
    assert [payload for payload in got if payload is not None] == [PAYLOAD]


@pytest.mark.parametrize(
    "transport",
    [stock("claims by shutil.move into the system temp folder: on a tmpfs, a copy and a delete"), OURS_PARAM],
)
def test_a_claim_renames_the_very_file_whatever_the_system_temp_folder(
    connect, options, monkeypatch, transport
):
    """With /tmp on another filesystem (tmpfs, as on Debian 13 and Fedora) the consumer still reads the
    inode the producer renamed in: the claim is one rename, which only one consumer can win."""
    queue_folder = Path(options["data_folder_in"])
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == queue_folder.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than tmp_path's")
    system_tmp = tempfile.mkdtemp(dir=shm)
    monkeypatch.setattr(tempfile, "tempdir", system_tmp)
    channel = connect(transport).default_channel
    channel._put("default", PAYLOAD)
    (queued,) = queue_folder.iterdir()
    inode = (queued.stat().st_dev, queued.stat().st_ino)
    read = []
    real_open = builtins.open

    def spying_open(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        if reads_message(str(file), mode):
            stat = os.fstat(opened.fileno())
            read.append((stat.st_dev, stat.st_ino))
        return opened

    monkeypatch.setattr(builtins, "open", spying_open)
    try:
        assert channel._get("default") == PAYLOAD
    finally:
        shutil.rmtree(system_tmp)
    assert read == [inode]


UNDECODABLE = {
    "empty": b"",
    "torn": b'{"body": "eyJ0YXNrIjog',
    "not-utf-8": b'{"body": "\xff\xfe", "properties": {}}',
    "not-an-object": b"[1, 2]",
}


@pytest.mark.parametrize("content", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize(
    "transport",
    [stock("raises on the file (killing the worker), or delivers its replaced bytes"), OURS_PARAM],
)
def test_an_undecodable_message_is_moved_aside_and_the_next_ones_are_consumed(
    connect, options, caplog, transport, content
):
    queue_folder = Path(options["data_folder_in"])
    queue = connect(transport).SimpleQueue("default")
    bad_name = f"0_{uuid.uuid4()}.default.msg"  # the oldest: consumed first
    (queue_folder / bad_name).write_bytes(content)
    queue.put({"n": 1})
    queue.put({"n": 2})

    with caplog.at_level(logging.WARNING, logger="config.broker"):
        messages = [queue.get(timeout=2) for _ in range(2)]
    for message in messages:
        message.ack()

    assert sorted(message.payload["n"] for message in messages) == [1, 2]
    assert os.listdir(queue_folder.parent / "bad") == [bad_name]
    assert os.listdir(queue_folder) == []
    assert bad_name in caplog.text
    queue.close()


@pytest.mark.parametrize("store_processed", [False, True])
def test_the_channel_makes_its_folders_and_keeps_a_consumed_message_only_if_asked(tmp_path, store_processed):
    root = tmp_path / "celery"
    options = {**broker_options(root), "store_processed": store_processed}
    with kombu.Connection(transport=OURS, transport_options=options) as connection:
        channel = connection.default_channel
        channel._put("default", PAYLOAD)
        assert channel._get("default") == PAYLOAD

    assert os.listdir(root / "queue") == os.listdir(root / "claimed") == os.listdir(root / "tmp") == []
    processed = os.listdir(root / "processed") if (root / "processed").exists() else []
    assert len(processed) == (1 if store_processed else 0)


# Exchange tables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "before"),
    [
        stock("opens a new table 'wb', then locks it: a reader finds it empty", [], test_id="stock-new"),
        pytest.param(STOCK, ["old"], id="stock-existing"),
        pytest.param(OURS, [], id="ours-new"),
        pytest.param(OURS, ["old"], id="ours-existing"),
    ],
)
def test_a_reader_never_sees_a_table_a_binder_has_emptied(connect, race, caplog, transport, before):
    """The binder is held right after it opens the table, or its replacement, for writing.

    Stock kombu is safe on an existing table: it opens it "rb+" (no truncation) and readers take a
    shared lock. A new one it creates with "wb" before taking the lock.
    """
    binder, reader = connect(transport).default_channel, connect(transport).default_channel
    for queue in before:
        binder._queue_bind("jobs", queue, "", queue)
    held = race.hold("binder", writes_table)
    bind = race.step("binder", lambda: binder._queue_bind("jobs", "jobs", "", "jobs"))
    held.wait_reached()

    with caplog.at_level(logging.WARNING, logger="config.broker"):
        seen = race.step("reader", lambda: reader.get_table("jobs")).outcome(timeout=5)

    held.release()
    bind.outcome()
    assert [binding.queue for binding in seen] == before
    assert "Unreadable exchange table" not in caplog.text
    assert [binding.queue for binding in reader.get_table("jobs")] == ["jobs", *before]


@pytest.mark.parametrize(
    "transport",
    [stock("a second binder locks and reads the table the first created but has not written"), OURS_PARAM],
)
def test_two_binders_starting_together_both_land_in_the_table(connect, race, monkeypatch, transport):
    first, second = connect(transport).default_channel, connect(transport).default_channel
    second_locking = threading.Event()
    real_lock = filesystem.lock

    def lock(file, flags):
        if threading.current_thread().name == "second":
            second_locking.set()
        real_lock(file, flags)

    monkeypatch.setattr(filesystem, "lock", lock)
    held = race.hold("first", writes_table)
    first_bind = race.step(
        "first", lambda: first._queue_bind("celery.pidbox", "", "", "a@host.celery.pidbox")
    )
    held.wait_reached()
    second_bind = race.step(
        "second", lambda: second._queue_bind("celery.pidbox", "", "", "b@host.celery.pidbox")
    )
    assert second_locking.wait(5)
    second_bind.join(0.3)  # stock: done (it did not wait); ours: waiting for the first binder's lock

    held.release()
    first_bind.outcome()
    second_bind.outcome()
    assert sorted(binding.queue for binding in first.get_table("celery.pidbox")) == [
        "a@host.celery.pidbox",
        "b@host.celery.pidbox",
    ]


@pytest.mark.parametrize("transport", [STOCK_IS_SAFE_TOO, OURS_PARAM])
def test_fanout_size_purge_and_delete_behave_as_in_kombu(connect, transport):
    channel = connect(transport).default_channel
    exchange = kombu.Exchange("broadcast", type="fanout")
    nodes = [kombu.Queue(f"node{i}", exchange)(channel) for i in (1, 2)]
    for node in nodes:
        node.declare()
    producer = kombu.Producer(channel)

    producer.publish({"hello": "all"}, exchange=exchange)
    assert [channel._size(node.name) for node in nodes] == [1, 1]
    assert [channel.basic_get(node.name, no_ack=True).payload for node in nodes] == [{"hello": "all"}] * 2

    for _ in range(3):
        producer.publish({"hello": "again"}, exchange=exchange)
    assert channel.queue_purge("node1") == 3
    assert [channel._size(node.name) for node in nodes] == [0, 3]

    nodes[1].delete()
    assert channel._size("node2") == 0
    assert [binding.queue for binding in channel.get_table("broadcast")] == ["node1"]


# Celery -----------------------------------------------------------------------------------


def test_settings_select_this_transport_and_a_celery_task_message_round_trips(options):
    from django.conf import settings

    from config.celery import app

    assert settings.CELERY_BROKER_TRANSPORT == OURS
    with app.connection_for_write(transport_options=options) as connection:
        assert type(connection.transport) is broker.Transport
        queue = connection.SimpleQueue("default")  # declares Celery's default queue and its binding
        app.send_task("tests.config.echo", args=[41], kwargs={"plus": 1}, connection=connection)
        message = queue.get(timeout=2)
        message.ack()
        queue.close()

    assert message.headers["task"] == "tests.config.echo"
    assert message.payload[:2] == [[41], {"plus": 1}]


def test_a_remote_control_ping_gets_its_reply_over_the_fanout_exchange(options):
    """What `celery inspect ping` does: a fanout to every node's pidbox queue, a direct reply back."""
    from config.celery import app

    mailbox = Mailbox(app.conf.control_exchange, type="fanout", accept=["json"])
    node_connection = app.connection_for_write(transport_options=options)
    client_connection = app.connection_for_write(transport_options=options)
    node = mailbox.Node(
        "test@broker", channel=node_connection.default_channel, handlers={"ping": lambda state: "pong"}
    )
    listening = node.listen()
    client = mailbox(client_connection)
    client.reply_queue(client_connection.default_channel).declare()  # before a reply can arrive
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):  # socket.timeout
                node_connection.drain_events(timeout=0.05)

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    try:
        replies = client._broadcast("ping", destination=["test@broker"], reply=True, timeout=5)
    finally:
        stop.set()
        serving.join(5)
        listening.cancel()
        node_connection.release()
        client_connection.release()

    assert replies == [{"test@broker": "pong"}]


# Many processes -----------------------------------------------------------------------------

PRODUCERS = CONSUMERS = 3
PER_PRODUCER = 1000


def _produce(options: dict, producer: int, count: int) -> None:
    with kombu.Connection(transport=OURS, transport_options=options) as connection:
        queue = connection.SimpleQueue("stress")
        for seq in range(count):
            queue.put({"id": f"{producer}:{seq}"})
        queue.close()


def _consume(options: dict, out: str, producers_done) -> None:
    received = []
    with kombu.Connection(transport=OURS, transport_options=options) as connection:
        queue = connection.SimpleQueue("stress")
        while True:
            # Read the flag before looking: an empty look after it was set means nothing is left.
            finished = producers_done.is_set()
            try:
                message = queue.get(timeout=0.2)
            except Empty:
                if finished:
                    break
                continue
            received.append(message.payload["id"])
            message.ack()
        queue.close()
    Path(out).write_text(json.dumps(received))


@pytest.mark.slow
def test_producer_and_consumer_processes_lose_and_duplicate_nothing(tmp_path):
    """3 producer and 3 consumer processes, 3,000 messages, one set of folders: every message arrives once."""
    root = tmp_path / "celery"
    options = broker_options(root)  # folders not made: each process's channel makes them
    context = multiprocessing.get_context("spawn")
    producers_done = context.Event()
    outs = [tmp_path / f"consumer-{i}.json" for i in range(CONSUMERS)]
    consumers = [context.Process(target=_consume, args=(options, str(out), producers_done)) for out in outs]
    producers = [context.Process(target=_produce, args=(options, i, PER_PRODUCER)) for i in range(PRODUCERS)]
    try:
        for process in consumers + producers:
            process.start()
        for process in producers:
            process.join(60)
        producers_done.set()
        for process in consumers:
            process.join(60)
    finally:
        for process in consumers + producers:
            if process.is_alive():
                process.kill()

    assert [process.exitcode for process in producers + consumers] == [0] * (PRODUCERS + CONSUMERS)
    received = [message_id for out in outs for message_id in json.loads(out.read_text())]
    sent = {f"{producer}:{seq}" for producer in range(PRODUCERS) for seq in range(PER_PRODUCER)}
    assert len(received) - len(set(received)) == 0, "duplicated"
    assert sent - set(received) == set(), "lost"
    for folder in ("queue", "tmp", "claimed", "bad"):
        assert os.listdir(root / folder) == [], folder
