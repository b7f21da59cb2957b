"""Fetching a URL the model chose, safely: an SSRF guard, pinned addresses, bounded everything.

    resp = fetch("https://example.org/a", allowed_types=HTML_OR_PDF)   # -> Fetched

For every hop (the first URL and each redirect, followed by hand, at most ``max_redirects``):

1. only ``http`` / ``https``, no user:password in the URL;
2. the host is resolved here and *every* address checked: cloud-metadata addresses
   (169.254.169.254, fd00:ec2::254, 100.100.100.200, …), unspecified, multicast, link-local and
   reserved addresses are always refused; loopback, private and other non-public addresses are
   refused unless ``FOURHOSTS_FETCH_ALLOW_PRIVATE=1`` (an intranet, tests);
3. the connection goes to the address that was checked — the URL's host is replaced by it, the
   ``Host`` header and TLS SNI (httpcore's ``sni_hostname``) keep the name, so the certificate
   is still verified for the name — and a second DNS answer (rebinding) is never asked for;
   proxies from the environment are ignored for the same reason.

The body is streamed and abandoned past ``max_bytes`` (decoded bytes, so a gzip bomb stops
too); the whole fetch has a deadline (``total_timeout``) on top of httpx's per-phase timeouts.
No DNS or no route becomes :class:`NetworkUnavailable`, an error the model can act on.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import FetchRefused, FetchTimeout, FetchTooLarge, NetworkUnavailable, UnsupportedContent, WebError

ALLOW_PRIVATE_ENV = "FOURHOSTS_FETCH_ALLOW_PRIVATE"
USER_AGENT = (
    "fourhosts-jupyter/0.1 (research assistant reading pages an analyst asked about; "
    "one request per page, results cached)"
)
HTML_TYPES = ("text/html", "application/xhtml+xml")
PDF_TYPES = ("application/pdf",)
TEXT_TYPES = ("text/plain",)
READABLE_TYPES = HTML_TYPES + PDF_TYPES + TEXT_TYPES
REDIRECTS = (301, 302, 303, 307, 308)

# Instance metadata services: refused even when private addresses are allowed.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "168.63.129.16",  # Azure wire server
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 5 * 1024 * 1024
    total_timeout: float = 20.0  # seconds for the whole fetch, redirects included
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_redirects: int = 5


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int
    content_type: str  # lower-cased media type without parameters ("" when not given)
    charset: str | None
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    redirects: tuple[str, ...] = ()  # the URLs that redirected, in order
    address: str = ""  # the address connected to
    seconds: float = 0.0


def allow_private_from_env() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    """Why ``ip`` may not be fetched from, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
            return address_problem(mapped, allow_private)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address (always refused)"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_loopback:  # before "reserved": ::1 lies in IPv6's reserved ::/8
        return None if allow_private else f"a loopback address (set {ALLOW_PRIVATE_ENV}=1 to allow it)"
    if ip.is_reserved:
        return "a reserved address"
    if allow_private:
        return None
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT) or not ip.is_global:
        return f"a private address (set {ALLOW_PRIVATE_ENV}=1 to allow intranet addresses)"
    return None


Resolver = Callable[[str, int], Sequence[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (IP literals as they are)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NetworkUnavailable(
            f"cannot resolve {host!r} ({exc.strerror}): there is no network here, or no such "
            f"host. Do not retry; answer from memory (search_memory) or say the web is unreachable"
        ) from None
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%")[0]
        if addr not in out:
            out.append(addr)
    return out


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> tuple[urllib.parse.SplitResult, list[str]]:
    """The URL split and the checked addresses of its host, or FetchRefused."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"{url!r} is not a valid URL ({exc}): give a full http(s) address") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(
            f"{url!r} uses the scheme {scheme or '(none)'!r}: only http and https pages can be read"
        )
    host = parts.hostname
    if not host:
        raise FetchRefused(f"{url!r} has no host: give a full address such as https://example.org/page")
    if parts.username or parts.password:
        raise FetchRefused(f"{scheme}://…@{host}: URLs with a user name or password are refused")
    port = port or (443 if scheme == "https" else 80)
    literal = _ip_literal(host)
    addresses = [literal] if literal else list(resolver(host, port))
    if not addresses:
        raise NetworkUnavailable(f"{host!r} resolved to no address: there may be no network here")
    for addr in addresses:
        problem = address_problem(ipaddress.ip_address(addr), allow_private)
        if problem:
            shown = host if host == addr else f"{host} ({addr})"
            raise FetchRefused(f"refused to fetch {shown}: it is {problem}")
    return parts, addresses


def fetch(
    url: str,
    *,
    limits: FetchLimits | None = None,
    allowed_types: Sequence[str] | None = None,
    allow_private: bool | None = None,
    resolver: Resolver = resolve,
    headers: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Fetched:
    """GET ``url`` under the guard (see the module doc). ``allowed_types`` refuses other media
    types from the headers, before the body is read; ``verify`` is httpx's (an intranet CA)."""
    import httpx

    limits = limits or FetchLimits()
    allow = allow_private_from_env() if allow_private is None else allow_private
    t0 = time.monotonic()
    deadline = t0 + limits.total_timeout
    redirects: list[str] = []
    current = url
    with httpx.Client(follow_redirects=False, trust_env=False, verify=verify) as client:
        while True:
            parts, addresses = check_url(current, allow_private=allow, resolver=resolver)
            response, address = _open(client, parts, addresses, limits, deadline, headers)
            try:
                if response.status_code in REDIRECTS and response.headers.get("location"):
                    if len(redirects) >= limits.max_redirects:
                        raise FetchRefused(
                            f"{url} redirected more than {limits.max_redirects} times: giving up"
                        )
                    redirects.append(current)
                    current = urllib.parse.urljoin(current, response.headers["location"])
                    continue
                media, charset = _media_type(response.headers.get("content-type", ""))
                if allowed_types is not None and response.status_code < 400:
                    media = media or ""
                    if media and media not in allowed_types:
                        raise UnsupportedContent(
                            f"{current} is {media}, which cannot be read: only "
                            f"{', '.join(sorted(set(allowed_types)))} pages are"
                        )
                body = _read(response, current, limits, deadline)
            finally:
                response.close()
            return Fetched(
                url=current,
                status=response.status_code,
                content_type=media,
                charset=charset,
                body=body,
                headers={k.lower(): v for k, v in response.headers.items()},
                redirects=tuple(redirects),
                address=address,
                seconds=time.monotonic() - t0,
            )


def _open(client: Any, parts: urllib.parse.SplitResult, addresses: list[str], limits: FetchLimits,
          deadline: float, headers: dict[str, str] | None) -> tuple[Any, str]:
    """Send the request to the first checked address that answers; the host name stays in the
    Host header and the TLS SNI."""
    import httpx

    host = parts.hostname or ""
    port = parts.port
    host_header = _bracket(host) + (f":{port}" if port else "")
    last: Exception | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pinned = httpx.URL(urllib.parse.urlunsplit(parts._replace(fragment=""))).copy_with(host=address)
        timeout = httpx.Timeout(
            connect=min(limits.connect_timeout, remaining),
            read=min(limits.read_timeout, remaining),
            write=min(limits.read_timeout, remaining),
            pool=min(limits.connect_timeout, remaining),
        )
        extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        if parts.scheme.lower() == "https":
            extensions["sni_hostname"] = host
        request = client.build_request(
            "GET",
            pinned,
            headers={"Host": host_header, "User-Agent": USER_AGENT,
                     "Accept": "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.1",
                     **(headers or {})},
            extensions=extensions,
        )
        try:
            return client.send(request, stream=True), address
        except httpx.TimeoutException as exc:
            last = exc
            if time.monotonic() >= deadline or isinstance(exc, httpx.ReadTimeout):
                raise FetchTimeout(f"{host} did not answer within {limits.total_timeout:g} s") from None
        except httpx.ConnectError as exc:
            last = exc
        except httpx.HTTPError as exc:
            raise WebError(f"fetching from {host} failed: {type(exc).__name__}: {exc}") from None
    if _unreachable(last):
        raise NetworkUnavailable(
            f"cannot reach {host}: the network is unreachable from here. Do not retry; answer "
            f"from memory (search_memory) or say the web is unreachable"
        ) from None
    if isinstance(last, httpx.TimeoutException) or time.monotonic() >= deadline:
        raise FetchTimeout(f"{host} did not answer within {limits.total_timeout:g} s") from None
    raise WebError(f"cannot connect to {host}: {last}") from None


def _read(response: Any, url: str, limits: FetchLimits, deadline: float) -> bytes:
    import httpx

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchTooLarge(
            f"{url} is {int(declared):,} bytes, over the {limits.max_bytes:,}-byte cap: "
            f"refused without reading it"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limits.max_bytes:
                raise FetchTooLarge(
                    f"{url} is larger than the {limits.max_bytes:,}-byte cap: stopped reading"
                )
            if time.monotonic() > deadline:
                raise FetchTimeout(f"{url} took longer than {limits.total_timeout:g} s to download")
            chunks.append(chunk)
    except httpx.TimeoutException:
        raise FetchTimeout(f"{url} took longer than {limits.total_timeout:g} s to download") from None
    except httpx.HTTPError as exc:
        raise WebError(f"reading {url} failed: {type(exc).__name__}: {exc}") from None
    return b"".join(chunks)


def _unreachable(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
            return True
        if "Network is unreachable" in str(exc) or "No route to host" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _ip_literal(host: str) -> str | None:
    """``host`` as an IP address if it is one, including the legacy IPv4 forms a resolver would
    accept (``2130706433``, ``0x7f.1``, ``127.1``), so they are judged as the address they are."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", host, re.I):
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(host)))
        except OSError:
            raise FetchRefused(f"{host!r} is not a valid address: give a host name or a dotted IP") from None
    return None


def _media_type(value: str) -> tuple[str, str | None]:
    media, _, params = value.partition(";")
    charset = None
    for p in params.split(";"):
        k, _, v = p.strip().partition("=")
        if k.lower() == "charset" and v:
            charset = v.strip().strip('"')
    return media.strip().lower(), charset


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
