"""Fetching an image named by URL, server-side, for an import (no Django; the standard library only).

Only http and https, and only to public addresses: the host is resolved once (an injectable
resolver, `socket.getaddrinfo` by default), refused if ANY of its addresses is not public
(private, loopback, link-local, multicast, reserved, unspecified; an IPv4-mapped, 6to4 or Teredo
IPv6 address is judged by the IPv4 address inside it), and the connection goes to the checked
address itself: no second lookup can swap it (DNS rebinding). https verifies the certificate
against the URL's host name (SNI too), and the Host header is the URL's host. Redirects are
followed by hand, at most MAX_REDIRECTS, each new URL checked the same way. A body over
`max_bytes` is refused from its Content-Length and again while it is read; the whole fetch,
redirects included, has `time_limit` seconds (a watchdog closes the socket at the deadline, so a
server that sends a byte at a time cannot stretch it).

A refusal is `UrlFetchRefused`, whose message names the URL and why, e.g. "http://10.0.0.1/a.png:
the address 10.0.0.1 is private; only public addresses are fetched".
"""

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 20 * 2**20
DEFAULT_TIME_LIMIT = 10.0
_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 64 * 1024
_USER_AGENT = "LabelLoop-import/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# getaddrinfo's shape: (host, port, family, type) -> [(family, type, proto, canonname, sockaddr)].
Resolver = Callable[..., Sequence[tuple[Any, Any, Any, Any, tuple]]]
# Why an address may not be fetched from, or None when it may.
AddressRule = Callable[[IPAddress], str | None]


class UrlFetchRefused(Exception):
    """A URL not fetched; str() is "<url>: <why>"."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def address_refusal(address: IPAddress) -> str | None:
    """Why `address` is not fetched from (it is not public), or None for a public address."""
    why = _not_public(address)
    return None if why is None else f"{why}; only public addresses are fetched"


def _not_public(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if inner is not None:
            why = _not_public(inner)
            return None if why is None else f"{why} (inside the IPv6 address {address})"
    if address.is_unspecified:
        kind = "unspecified"
    elif address.is_loopback:
        kind = "loopback"
    elif address.is_link_local:
        kind = "link-local"
    elif address.is_multicast:
        kind = "multicast"
    elif address.is_private:
        kind = "private"
    elif address.is_reserved:
        kind = "reserved"
    elif not address.is_global:
        kind = "not public"
    else:
        return None
    return f"the address {address} is {kind}"


@dataclass
class UrlFetcher:
    """Fetches http(s) URLs from public addresses only, within `max_bytes` and `time_limit`."""

    resolver: Resolver = socket.getaddrinfo
    address_rule: AddressRule = address_refusal
    max_bytes: int = DEFAULT_MAX_BYTES
    time_limit: float = DEFAULT_TIME_LIMIT
    max_redirects: int = MAX_REDIRECTS
    clock: Callable[[], float] = field(default=time.monotonic)

    def fetch(self, url: str) -> bytes:
        """The body of `url` after at most `max_redirects` redirects, or UrlFetchRefused."""
        deadline = self.clock() + self.time_limit
        current = url
        for _ in range(self.max_redirects + 1):
            target = _Target.parse(current)
            addresses = self._addresses(target)
            status, location, body = self._get(target, addresses, deadline)
            if status in _REDIRECTS:
                if not location:
                    raise UrlFetchRefused(current, f"a redirect ({status}) without a Location")
                current = urljoin(current, location)
                continue
            if status != 200:
                raise UrlFetchRefused(current, f"the server answered {status}, not 200")
            return body
        raise UrlFetchRefused(url, f"more than {self.max_redirects} redirects")

    def _addresses(self, target: "_Target") -> list[tuple[int, tuple]]:
        """(family, sockaddr) of every address of the host, each checked by the rule; one refused
        refuses the URL (a name resolving to a public and a private address is not fetched)."""
        try:
            literal = ipaddress.ip_address(target.host)
        except ValueError:
            literal = None
        if literal is not None:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            found = [
                (
                    family,
                    (str(literal), target.port)
                    if family == socket.AF_INET
                    else (str(literal), target.port, 0, 0),
                )
            ]
        else:
            try:
                infos = self.resolver(target.host, target.port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                raise UrlFetchRefused(
                    target.url, f"the host {target.host!r} cannot be resolved ({exc})"
                ) from None
            found = [(info[0], info[4]) for info in infos]
            if not found:
                raise UrlFetchRefused(target.url, f"the host {target.host!r} has no address")
        checked = []
        for family, sockaddr in found:
            try:
                address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            except ValueError:
                raise UrlFetchRefused(
                    target.url, f"the host resolved to {sockaddr[0]!r}, not an address"
                ) from None
            why = self.address_rule(address)
            if why is not None:
                raise UrlFetchRefused(target.url, why)
            checked.append((family, sockaddr))
        return checked

    def _get(
        self, target: "_Target", addresses: list[tuple[int, tuple]], deadline: float
    ) -> tuple[int, str | None, bytes]:
        """GET from the first address that connects: (status, Location, body; empty unless 200)."""
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise UrlFetchRefused(target.url, f"took longer than {self.time_limit:g} s")
        connection = _PinnedConnection(target, addresses, timeout=remaining)
        watchdog = threading.Timer(remaining, connection.abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.putrequest("GET", target.path, skip_accept_encoding=True)
            connection.putheader("User-Agent", _USER_AGENT)
            connection.putheader("Accept", "image/*")
            connection.endheaders()
            response = connection.getresponse()
            if response.status != 200:
                return response.status, response.getheader("Location"), b""
            return 200, None, self._body(target, response, deadline)
        except UrlFetchRefused:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if connection.aborted or self.clock() >= deadline or isinstance(exc, TimeoutError):
                raise UrlFetchRefused(target.url, f"took longer than {self.time_limit:g} s") from None
            raise UrlFetchRefused(target.url, f"the fetch failed ({exc or type(exc).__name__})") from None
        finally:
            watchdog.cancel()
            connection.close()

    def _body(self, target: "_Target", response: http.client.HTTPResponse, deadline: float) -> bytes:
        limit = f"larger than the limit of {self.max_bytes:,} bytes"
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise UrlFetchRefused(target.url, f"{limit} (Content-Length {int(length):,})")
        chunks, size = [], 0
        while chunk := response.read1(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise UrlFetchRefused(target.url, limit)
            if self.clock() >= deadline:
                raise UrlFetchRefused(target.url, f"took longer than {self.time_limit:g} s")
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> "_Target":
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UrlFetchRefused(url, f"not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlFetchRefused(url, f"only http and https URLs are fetched, not {scheme or 'no scheme'!r}")
        if not parts.hostname:
            raise UrlFetchRefused(url, "the URL names no host")
        if parts.username is not None or parts.password is not None:
            raise UrlFetchRefused(url, "a URL with a user name or password is not fetched")
        if any(ord(c) <= 32 or ord(c) == 127 for c in url):
            raise UrlFetchRefused(url, "the URL contains spaces or control characters")
        host = parts.hostname
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise UrlFetchRefused(url, f"the host {host!r} is not a valid name") from None
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(
            url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path
        )


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to addresses already checked: no lookup of its own; the Host header,
    SNI and the certificate check use the URL's host name."""

    def __init__(self, target: _Target, addresses: list[tuple[int, tuple]], *, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._target = target
        self._addresses = addresses
        self._lock = threading.Lock()
        self.aborted = False

    def connect(self) -> None:
        error: OSError | None = None
        for family, sockaddr in self._addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            with self._lock:
                if self.aborted:
                    sock.close()
                    raise TimeoutError("aborted at the deadline")
                self.sock = sock
            try:
                sock.settimeout(self.timeout)
                sock.connect(sockaddr)
                break
            except OSError as exc:
                sock.close()
                error = exc
        else:
            raise error or OSError("no address to connect to")
        if self._target.scheme == "https":
            context = ssl.create_default_context()
            with self._lock:
                self.sock = context.wrap_socket(sock, server_hostname=self._target.host)

    def abort(self) -> None:
        """Called by the watchdog at the deadline: unblocks a read or connect in progress."""
        with self._lock:
            self.aborted = True
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
