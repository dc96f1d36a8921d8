"""The embedded Celery broker: kombu's filesystem transport, made safe for several processes at once.

config/settings.py selects `Transport` when CELERY_BROKER_URL is `filesystem://`. kombu 5.7's filesystem
Channel creates each message file in the queue folder and only then writes it, claims a message with
`shutil.move` into the system temp folder (a copy and a delete when that is another filesystem, as a
tmpfs /tmp is), and opens a new exchange table with "wb" before locking it. A consumer or a binder can
then read an empty or half-written file, and the JSONDecodeError kills the worker ("Unrecoverable
error", kombu issue 1551; it happened twice under the API fuzz run).

This Channel keeps kombu's folders, file names (`{ms}_{uuid}.{queue}.msg`), exact name matching and
transport options, and adds three folders beside the queue folder (so on its filesystem; a queue folder
that is a mount point fails loudly, with ChannelError), which it creates itself:
- `tmp/`: a message is written there, then `os.replace`d into the queue folder, so a consumer sees
  a whole file or none. No fsync: the race is between processes, not against a power cut; after one,
  an empty or torn file is possible and is moved aside like any other undecodable file.
- `claimed/`: a consumer claims a message by `os.rename` into it. Same filesystem, so exactly one
  consumer wins; the others get FileNotFoundError and try the next file. The claimed file is read,
  then deleted (or moved to processed_folder when store_processed is set).
- `bad/`: a message that is not UTF-8 JSON holding an object is moved there with a warning, and the
  consumer carries on with the next one instead of raising.
An exchange table (`control/<exchange>.exchange`) is rewritten under an exclusive lock on
`<exchange>.exchange.lock`, through a temp file and `os.replace`, so readers need no lock and never see
an empty or partial table. A consumer killed between claim and read leaves its message in `claimed/`:
like kombu's, this broker cannot redeliver.
"""

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)


def _write_replacing(path: str | Path, data: bytes, tmp: str | Path) -> None:
    """Write `data` to `tmp`, then rename it over `path`: readers see no file, the old one or the new one."""
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _oldest_first(name: str) -> tuple[int, str]:
    # The millisecond prefix grows a digit now and then; compare its width first so FIFO survives that.
    return name.find("_"), name


class Channel(filesystem.Channel):
    """kombu's filesystem Channel with atomic writes, rename claims and undecodable files moved aside."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        folders = [self.data_folder_in, self.data_folder_out, self.tmp_folder, self.claim_folder]
        folders += [self.bad_folder, self.control_folder]
        if self.store_processed:
            folders.append(self.processed_folder)
        for folder in folders:
            os.makedirs(folder, exist_ok=True)

    @staticmethod
    def _beside(folder: str, name: str) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(folder)), name)

    @cached_property
    def tmp_folder(self) -> str:
        return self._beside(self.data_folder_out, "tmp")

    @cached_property
    def claim_folder(self) -> str:
        return self._beside(self.data_folder_in, "claimed")

    @cached_property
    def bad_folder(self) -> str:
        return self._beside(self.data_folder_in, "bad")

    # Messages ---------------------------------------------------------------------------------

    def _put(self, queue, payload, **kwargs) -> None:
        """Put `payload` onto `queue`: written in tmp/, then renamed into the queue folder whole."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        # The .tmp suffix keeps the name from matching a queue even if tmp/ were someone's queue folder.
        tmp = os.path.join(self.tmp_folder, f"{name}.tmp")
        try:
            _write_replacing(path, str_to_bytes(dumps(payload)), tmp)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue):
        """Claim and return the oldest decodable message on `queue`; raise Empty when there is none."""
        queue_find = f"{queue}.msg"
        try:
            listing = os.listdir(self.data_folder_in)
        except FileNotFoundError:
            # The folder was removed under a running worker: raising here would kill it.
            os.makedirs(self.data_folder_in, exist_ok=True)
            raise Empty() from None
        names = [name for name in listing if name.partition(".")[2] == queue_find]
        for name in sorted(names, key=_oldest_first):
            claimed = self._claim(name)
            if claimed is None:
                continue
            payload = self._read_claimed(claimed)
            if payload is not None:
                return payload
        raise Empty()

    def _claim(self, name: str) -> str | None:
        """Rename the message file `name` into claimed/; None when another consumer renamed it first."""
        source = os.path.join(self.data_folder_in, name)
        claimed = os.path.join(self.claim_folder, name)
        for _ in range(2):
            try:
                os.rename(source, claimed)
                return claimed
            except FileNotFoundError:
                # A missing claimed/ folder fails the same way as a lost race, and would starve the queue.
                if os.path.isdir(self.claim_folder):
                    return None
                os.makedirs(self.claim_folder, exist_ok=True)
            except OSError as exc:
                raise ChannelError(f"Cannot claim {source!r} into {self.claim_folder!r}") from exc
        return None

    def _read_claimed(self, claimed: str):
        """Decode the file this consumer claimed; an undecodable one is moved aside and None returned."""
        try:
            with open(claimed, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
        try:
            payload = loads(raw)  # strict UTF-8, unlike kombu's bytes_to_str, which replaces bad bytes
            if not isinstance(payload, dict):
                raise ValueError(f"a message is a JSON object, not {type(payload).__name__}")
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._move_aside(claimed, exc)
            return None
        try:
            if self.store_processed:
                shutil.move(claimed, os.path.join(self.processed_folder, os.path.basename(claimed)))
            else:
                os.remove(claimed)
        except OSError:
            # The message is decoded and this consumer alone holds it: deliver it rather than lose it.
            logger.warning("Could not remove claimed broker message %s", claimed, exc_info=True)
        return payload

    def _move_aside(self, claimed: str, error: Exception) -> None:
        bad = os.path.join(self.bad_folder, os.path.basename(claimed))
        try:
            os.makedirs(self.bad_folder, exist_ok=True)
            os.rename(claimed, bad)
        except OSError:
            logger.warning("Undecodable broker message %s could not be moved aside: %s", claimed, error)
        else:
            logger.warning("Undecodable broker message %s moved aside to %s: %s", claimed, bad, error)

    # Exchange tables --------------------------------------------------------------------------

    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            return self._read_table(file)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue) -> None:
        file = self._exchange_file(exchange)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            self.control_folder.mkdir(parents=True, exist_ok=True)
            with self._table_lock(file):
                table = self._read_table(file)
                if binding not in table:
                    table.insert(0, binding)
                    self._write_table(file, table)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs) -> None:
        # virtual.Channel's _delete purges the queue; kombu's filesystem one also rewrites the table in place.
        virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        file = self._exchange_file(exchange)
        if not file.exists():
            return
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            with self._table_lock(file):
                table = self._read_table(file)
                if binding in table:
                    table.remove(binding)
                    self._write_table(file, table)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    @contextmanager
    def _table_lock(self, file: Path) -> Iterator[None]:
        """Hold the exclusive lock that serialises rewrites of `file` (a separate file, never replaced)."""
        with open(f"{file}.lock", "ab") as lock_file:  # "a": opening never truncates
            filesystem.lock(lock_file, filesystem.LOCK_EX)
            try:
                yield
            finally:
                filesystem.unlock(lock_file)

    def _read_table(self, file: Path) -> list:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return [filesystem.exchange_queue_t(*binding) for binding in loads(raw)]
        except (ValueError, TypeError) as exc:
            # Only a foreign writer (stock kombu, a disk fault) leaves one; the next bind rewrites it.
            logger.warning("Unreadable exchange table %s treated as empty: %s", file, exc)
            return []

    def _write_table(self, file: Path, table: list) -> None:
        """Replace the table `file` whole; the caller holds `_table_lock(file)`."""
        _write_replacing(file, str_to_bytes(dumps(table)), f"{file}.{uuid.uuid4().hex}.tmp")


class Transport(filesystem.Transport):
    """kombu's filesystem Transport over the safe Channel above."""

    Channel = Channel
    # Its own in-process state, apart from stock kombu's filesystem transport.
    global_state = virtual.BrokerState()
