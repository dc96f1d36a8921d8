"""Images named by URL in an import (annotate/importing/remote.py, images.url_rows_import).

Every test here runs under a socket guard: a connection to any address but 127.0.0.1 or ::1
fails the test with the guard's AssertionError, so a fetcher that let a private address through
never really connects, and its test fails (not with the UrlFetchRefused it expects). The
resolver is injected ("images.example" is the local server); the production address rule is
used everywhere except where a test lets 127.0.0.1 through to reach that server.
"""

import http.server
import ipaddress
import socket
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.importing import ImportRejected, images, import_csv, import_jsonl, item_import
from annotate.importing.remote import UrlFetcher, UrlFetchRefused, address_refusal
from annotate.models import Annotation, Item, Membership, Project
from tests.annotate import uploads
from tests.annotate.test_members_pages import _settings_data
from tests.annotate.uploads import file, image, media_files
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db

nothing_stored = uploads.nothing_stored
PNG = image("PNG", (8, 6))
LOOPBACK = ("127.0.0.1", "::1")


# The socket guard ---------------------------------------------------------------------------


class GuardTripped(AssertionError):
    pass


def _guard_check(address) -> None:
    if isinstance(address, tuple) and str(address[0]).split("%")[0] not in LOOPBACK:
        raise GuardTripped(f"the socket guard stopped a connection to {address[0]}")


@pytest.fixture(autouse=True)
def socket_guard(monkeypatch):
    """Fail any connection to an address that is not loopback (unix sockets pass)."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create = socket.create_connection

    def connect(self, address):
        _guard_check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        _guard_check(address)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        _guard_check(address)
        return real_create(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)


def test_the_socket_guard_stops_a_connection_to_a_private_address():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(GuardTripped):
        sock.connect(("10.255.255.1", 80))
    with pytest.raises(GuardTripped):
        socket.create_connection(("10.255.255.1", 80), timeout=0.1)


# A local server and an injected resolver -------------------------------------------------------


class Server:
    """A loopback HTTP server: `routes` maps a path to (status, headers, body) or to a callable
    given the handler; `requests` records (path, Host header) of each request."""

    def __init__(self):
        self.routes: dict = {}
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Host")))
                route = server.routes.get(self.path, (404, {}, b"no such file"))
                if callable(route):
                    route(self)
                    return
                status, headers, body = route
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers and body is not None:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str, host: str = "images.example") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    yield running
    running.stop.set()
    running.httpd.shutdown()
    running.httpd.server_close()
    running.thread.join(timeout=5)


def resolver(names: dict[str, list[str]]):
    """A getaddrinfo for `names` only; any other name does not resolve."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for address in names[host]:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    return resolve


def loopback_too(address):
    """The production rule, letting 127.0.0.1 through to reach the local server."""
    return None if address == ipaddress.ip_address("127.0.0.1") else address_refusal(address)


NAMES = {
    "images.example": ["127.0.0.1"],
    "private.example": ["10.0.0.5"],
    "mixed.example": ["127.0.0.1", "192.168.1.1"],
}


def local_fetcher(**limits) -> UrlFetcher:
    return UrlFetcher(resolver=resolver(NAMES), address_rule=loopback_too, **limits)


@pytest.fixture
def fetch_locally(monkeypatch):
    """Imports fetch through the injected resolver, 127.0.0.1 allowed; returns the fetchers made."""
    made: list[UrlFetcher] = []

    def make() -> UrlFetcher:
        made.append(local_fetcher(time_limit=2.0))
        return made[-1]

    monkeypatch.setattr(images, "url_fetcher", make)
    return made


@pytest.fixture
def fetching_project():
    return make_project(
        labels=["cat", "dog"], task_type=Project.TaskType.IMAGE_CLASSIFICATION, fetch_image_urls=True
    )


# Fetching works -----------------------------------------------------------------------------------


def test_a_csv_of_urls_creates_items_with_their_images_stored(
    fetching_project, server, fetch_locally, settings
):
    server.routes["/cats/tom.png"] = (200, {"Content-Type": "image/png"}, PNG)
    server.routes["/dog.png"] = (200, {}, image("PNG", (3, 4)))
    csv = f"image_url,id,label\n{server.url('/cats/tom.png')},tom,cat\n{server.url('/dog.png')},rex,\n"

    result = item_import(
        project=fetching_project,
        file=file(csv),
        filename="pets.csv",
        format="csv",
        options={"id_column": "id", "label_column": "label"},
    )

    assert (result.items_created, result.annotations_created) == (2, 1)
    items = {item.external_id: item for item in Item.objects.filter(project=fetching_project)}
    assert {key: (item.width, item.height) for key, item in items.items()} == {"tom": (8, 6), "rex": (3, 4)}
    assert items["tom"].image.name.startswith(f"projects/{fetching_project.id}/")
    assert items["tom"].image.name.endswith("-tom.png")
    assert items["tom"].image.read() == PNG
    assert len(media_files(settings)) == 2
    assert Annotation.objects.get().value == {"choices": ["cat"]}
    # The connection went to the checked address, with the URL's host in the Host header.
    assert server.requests == [
        ("/cats/tom.png", f"images.example:{server.port}"),
        ("/dog.png", f"images.example:{server.port}"),
    ]


def test_a_redirect_to_a_public_address_is_followed(server):
    server.routes["/old.png"] = (302, {"Location": "/new.png"}, b"")
    server.routes["/new.png"] = (200, {}, PNG)

    assert local_fetcher().fetch(server.url("/old.png")) == PNG
    assert [path for path, _ in server.requests] == ["/old.png", "/new.png"]


def test_a_jsonl_file_names_its_image_field(fetching_project, server, fetch_locally):
    server.routes["/a.png"] = (200, {}, PNG)
    lines = f'{{"picture": "{server.url("/a.png")}", "id": "a", "source": "cam 1"}}\n'

    import_jsonl(project=fetching_project, file=file(lines), filename="p.jsonl", image_column="picture")

    item = Item.objects.get()
    assert (item.external_id, item.metadata, item.text) == ("a", {"source": "cam 1"}, "")


# Refused addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.5", "the address 10.0.0.5 is private"),
        ("192.168.1.1", "the address 192.168.1.1 is private"),
        ("169.254.169.254", "the address 169.254.169.254 is link-local"),
        ("127.0.0.1", "the address 127.0.0.1 is loopback"),
        ("0.0.0.0", "the address 0.0.0.0 is unspecified"),
        ("::1", "the address ::1 is loopback"),
        ("::ffff:127.0.0.1", "the address 127.0.0.1 is loopback (inside the IPv6 address ::ffff:7f00:1)"),
        ("::ffff:10.0.0.1", "the address 10.0.0.1 is private (inside the IPv6 address ::ffff:a00:1)"),
        ("fe80::1", "the address fe80::1 is link-local"),
        ("fc00::1", "the address fc00::1 is private"),
        ("224.0.0.1", "the address 224.0.0.1 is multicast"),
        ("100.64.0.1", "the address 100.64.0.1 is not public"),
    ],
)
def test_a_name_resolving_to_a_non_public_address_is_refused_by_name(address, kind):
    fetcher = UrlFetcher(resolver=resolver({"cdn.example": [address]}))

    with pytest.raises(UrlFetchRefused) as refused:
        fetcher.fetch("http://cdn.example/a.png")

    assert str(refused.value) == f"http://cdn.example/a.png: {kind}; only public addresses are fetched"


def test_an_address_literal_in_the_url_is_checked_too():
    with pytest.raises(UrlFetchRefused, match=r"^http://10.0.0.1/a.png: the address 10.0.0.1 is private;"):
        UrlFetcher(resolver=resolver({})).fetch("http://10.0.0.1/a.png")
    with pytest.raises(UrlFetchRefused, match=r"169.254.169.254 is link-local"):
        UrlFetcher(resolver=resolver({})).fetch("https://[::ffff:169.254.169.254]/latest/meta-data/")


def test_one_private_address_among_a_names_addresses_refuses_it(server):
    with pytest.raises(UrlFetchRefused, match=r"192.168.1.1 is private"):
        local_fetcher().fetch(server.url("/a.png", host="mixed.example"))
    assert server.requests == []


def test_a_public_address_passes_the_rule():
    assert address_refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert address_refusal(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://private.example/a.png", "http://[::1]:1/a.png"],
)
def test_a_redirect_to_a_non_public_address_is_refused(server, location):
    server.routes["/a.png"] = (302, {"Location": location}, b"")

    with pytest.raises(UrlFetchRefused) as refused:
        local_fetcher().fetch(server.url("/a.png"))

    assert str(refused.value).startswith(f"{location}: the address ")
    assert "only public addresses are fetched" in str(refused.value)
    assert [path for path, _ in server.requests] == ["/a.png"]


def test_a_redirect_to_another_scheme_is_refused(server):
    server.routes["/a.png"] = (301, {"Location": "file:///etc/passwd"}, b"")

    with pytest.raises(UrlFetchRefused, match=r"^file:///etc/passwd: only http and https URLs are fetched"):
        local_fetcher().fetch(server.url("/a.png"))


def test_more_than_five_redirects_are_refused(server):
    for n in range(7):
        server.routes[f"/{n}"] = (302, {"Location": f"/{n + 1}"}, b"")

    with pytest.raises(UrlFetchRefused, match=r"more than 5 redirects"):
        local_fetcher().fetch(server.url("/0"))
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://images.example/a.png", "gopher://images.example:70/"]
)
def test_other_schemes_are_refused_by_the_fetcher(url):
    with pytest.raises(UrlFetchRefused, match=r"only http and https URLs are fetched"):
        local_fetcher().fetch(url)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://images.example/a.png", "gopher://images.example:70/"]
)
def test_other_schemes_refuse_the_import_naming_line_and_field(
    fetching_project, fetch_locally, url, nothing_stored
):
    with pytest.raises(ImportRejected) as refused:
        import_csv(project=fetching_project, file=file(f"image_url\n{url}\n"), filename="u.csv")

    assert str(refused.value).startswith(
        "u.csv, line 2, field 'image_url': only http and https URLs are fetched"
    )
    assert fetch_locally == []  # refused before any fetcher was made


# Limits -----------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_from_its_content_length(server):
    server.routes["/big.png"] = (200, {"Content-Length": "5000"}, b"x" * 5000)

    with pytest.raises(
        UrlFetchRefused, match=r"larger than the limit of 1,000 bytes \(Content-Length 5,000\)"
    ):
        local_fetcher(max_bytes=1000).fetch(server.url("/big.png"))


def test_a_body_over_the_limit_is_refused_as_it_is_read_without_a_content_length(server):
    def unsized(handler):
        handler.send_response(200)
        handler.end_headers()  # HTTP/1.0: the body ends when the connection closes
        handler.wfile.write(b"x" * 5000)

    server.routes["/big.png"] = unsized

    with pytest.raises(UrlFetchRefused) as refused:
        local_fetcher(max_bytes=1000).fetch(server.url("/big.png"))

    assert str(refused.value).endswith("larger than the limit of 1,000 bytes")


def test_a_server_that_never_answers_hits_the_time_limit(server):
    server.routes["/hang.png"] = lambda handler: server.stop.wait(5)

    with pytest.raises(UrlFetchRefused, match=r"took longer than 0.5 s"):
        local_fetcher(time_limit=0.5).fetch(server.url("/hang.png"))


def test_a_server_sending_a_byte_at_a_time_hits_the_time_limit(server):
    def drip(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if server.stop.wait(0.05):
                return
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return

    server.routes["/slow.png"] = drip

    with pytest.raises(UrlFetchRefused, match=r"took longer than 0.5 s"):
        local_fetcher(time_limit=0.5).fetch(server.url("/slow.png"))


def test_a_status_other_than_200_is_refused(server):
    with pytest.raises(UrlFetchRefused, match=r"/gone.png: the server answered 404, not 200"):
        local_fetcher().fetch(server.url("/gone.png"))


# The import's rules -------------------------------------------------------------------------------


@pytest.fixture
def closed_project():
    return make_project(labels=["cat"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)


def test_with_fetching_off_a_url_row_is_refused_and_nothing_is_fetched(
    closed_project, server, monkeypatch, nothing_stored
):
    project = closed_project
    server.routes["/a.png"] = (200, {}, PNG)
    monkeypatch.setattr(images, "url_fetcher", lambda: pytest.fail("no fetcher may be made"))

    with pytest.raises(ImportRejected) as refused:
        import_csv(project=project, file=file(f"image_url\n{server.url('/a.png')}\n"), filename="u.csv")

    assert str(refused.value) == (
        "u.csv, line 2, field 'image_url': fetching images by URL is off for this project;"
        " a manager can turn it on in the settings"
    )
    assert server.requests == []


def test_a_failed_fetch_fails_the_whole_import_and_leaves_no_files(
    fetching_project, server, fetch_locally, nothing_stored
):
    server.routes["/a.png"] = (200, {}, PNG)
    csv = f"image_url\n{server.url('/a.png')}\n{server.url('/missing.png')}\n"

    with pytest.raises(ImportRejected) as refused:
        import_csv(project=fetching_project, file=file(csv), filename="u.csv")

    assert str(refused.value) == (
        f"u.csv, line 3, field 'image_url': {server.url('/missing.png')}: the server answered 404, not 200;"
        " nothing was imported"
    )
    assert [path for path, _ in server.requests] == [
        "/a.png",
        "/missing.png",
    ]  # the first was stored, then deleted


def test_a_private_address_fails_the_import_naming_row_and_url(
    fetching_project, server, fetch_locally, nothing_stored
):
    server.routes["/a.png"] = (200, {}, PNG)
    csv = f"image_url\n{server.url('/a.png')}\nhttp://private.example/b.png\n"

    with pytest.raises(ImportRejected) as refused:
        import_csv(project=fetching_project, file=file(csv), filename="u.csv")

    assert str(refused.value) == (
        "u.csv, line 3, field 'image_url': http://private.example/b.png: the address 10.0.0.5 is private;"
        " only public addresses are fetched; nothing was imported"
    )


def test_fetched_bytes_pass_the_image_checks(fetching_project, server, fetch_locally, nothing_stored):
    server.routes["/a.png"] = (200, {"Content-Type": "image/png"}, b"<html>not an image</html>")

    with pytest.raises(ImportRejected) as refused:
        import_csv(
            project=fetching_project, file=file(f"image_url\n{server.url('/a.png')}\n"), filename="u.csv"
        )

    assert str(refused.value).startswith(
        f"u.csv, line 2, field 'image_url' ({server.url('/a.png')}): not an image"
    )


def test_a_bad_label_is_refused_before_anything_is_fetched(
    fetching_project, server, fetch_locally, nothing_stored
):
    csv = f"image_url,label\n{server.url('/a.png')},cat\n{server.url('/b.png')},horse\n"

    with pytest.raises(ImportRejected, match=r"^u.csv, line 3, field 'label': "):
        import_csv(project=fetching_project, file=file(csv), filename="u.csv", label_column="label")

    assert server.requests == []


def test_a_text_column_is_refused_for_an_image_project(fetching_project, nothing_stored):
    with pytest.raises(
        ImportRejected, match=r"its rows name an image by URL \(image_column\), not a text column"
    ):
        import_csv(project=fetching_project, file=file("body\nhi\n"), filename="u.csv", text_column="body")


# Who may turn it on ----------------------------------------------------------------------------------


def test_a_manager_turns_fetching_on_in_the_settings_of_an_image_project(client):
    lead = UserFactory()
    project = make_project(labels=["cat"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    project.memberships.filter(role="manager").update(user=lead)
    client.force_login(lead)
    assert 'name="fetch_image_urls"' in client.get(reverse("annotate:settings", args=[project.pk])).text

    response = client.post(
        reverse("annotate:settings", args=[project.pk]), _settings_data(project, fetch_image_urls="on")
    )

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.fetch_image_urls is True


def test_a_text_projects_settings_do_not_offer_fetching(client):
    lead = UserFactory()
    project = make_project()
    project.memberships.filter(role="manager").update(user=lead)
    client.force_login(lead)

    assert 'name="fetch_image_urls"' not in client.get(reverse("annotate:settings", args=[project.pk])).text


def test_the_api_lets_a_manager_set_it_and_refuses_an_annotator():
    annotator = UserFactory()
    project = make_project(
        labels=["cat"], task_type=Project.TaskType.IMAGE_CLASSIFICATION, members=[(annotator, "annotator")]
    )
    manager = project.memberships.get(role=Membership.Role.MANAGER).user
    url = reverse("api:project-detail", kwargs={"project_id": project.pk})
    api = APIClient()

    api.force_authenticate(annotator)
    refused = api.patch(url, {"fetch_image_urls": True}, format="json")
    api.force_authenticate(manager)
    answered = api.patch(url, {"fetch_image_urls": True}, format="json")

    assert refused.status_code == 403
    assert (answered.status_code, answered.json()["fetch_image_urls"]) == (200, True)
    project.refresh_from_db()
    assert project.fetch_image_urls is True


# Over the API --------------------------------------------------------------------------------------


def _api_import(project: Project, csv: str):
    api = APIClient()
    api.force_authenticate(project.memberships.get(role=Membership.Role.MANAGER).user)
    upload = SimpleUploadedFile("urls.csv", csv.encode(), content_type="text/csv")
    url = reverse("api:import-list", kwargs={"project_id": project.pk})
    return api.post(url, {"file": upload}, format="multipart")


def test_the_api_refuses_a_url_import_with_fetching_off_with_a_400(closed_project, server, settings):
    response = _api_import(closed_project, f"image_url\n{server.url('/a.png')}\n")

    assert response.status_code == 400
    assert response.json()["error"] == (
        "urls.csv, line 2, field 'image_url': fetching images by URL is off for this project;"
        " a manager can turn it on in the settings"
    )
    assert server.requests == [] and not closed_project.items.exists()
    assert not list((settings.MEDIA_ROOT / "imports").glob("*"))


def test_the_api_imports_images_by_url_when_fetching_is_on(fetching_project, server, fetch_locally):
    server.routes["/a.png"] = (200, {}, PNG)

    response = _api_import(fetching_project, f"image_url\n{server.url('/a.png')}\n")

    assert response.status_code == 201, response.json()
    assert response.json()["items_created"] == 1
    assert Item.objects.get().external_id == "urls.csv:2"


def test_a_refused_redirect_fails_the_import_naming_the_rows_url_and_the_target(
    fetching_project, server, fetch_locally, nothing_stored
):
    server.routes["/a.png"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")

    with pytest.raises(ImportRejected) as refused:
        import_csv(
            project=fetching_project, file=file(f"image_url\n{server.url('/a.png')}\n"), filename="u.csv"
        )

    assert str(refused.value) == (
        f"u.csv, line 2, field 'image_url': {server.url('/a.png')} redirected to"
        " http://169.254.169.254/latest/meta-data/: the address 169.254.169.254 is link-local;"
        " only public addresses are fetched; nothing was imported"
    )
