"""The Celery app. Tasks live in each app's tasks.py and call that app's services.

AtomicFilesystemBackend is the result backend on the embedded broker (settings'
CELERY_RESULT_BACKEND): Celery's filesystem backend with each result written whole.
"""

import contextlib
import os
import secrets

from celery import Celery
from celery.backends.filesystem import FilesystemBackend
from kombu.utils.encoding import ensure_bytes

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("labelloop", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _make_broker_folders(sender: Celery, **kwargs) -> None:
    # kombu's filesystem transport does not create its folders.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)


class AtomicFilesystemBackend(FilesystemBackend):
    """Celery's filesystem result backend, with each result written to a temporary name in the same
    folder and renamed into place, and its folder created.

    Stock `set` truncates the result file and then writes it: a web process polling for the result
    could read it empty or half-written (the embedded broker had the same race, config/broker.py).
    A rename is atomic, so a reader sees no file or the whole result.
    """

    def _find_path(self, url):
        path = super()._find_path(url)
        os.makedirs(path, exist_ok=True)  # before the parent's directory test writes in it
        return path

    def set(self, key, value):
        final = self._filename(key)
        temporary = final + b".tmp-" + secrets.token_hex(8).encode()
        try:
            with self.open(temporary, "wb") as out:
                out.write(ensure_bytes(value))
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def delete(self, key):
        # A waiter that gave up forgets a result that may never have been written.
        with contextlib.suppress(FileNotFoundError):
            super().delete(key)
