"""The safe fetch: every SSRF refusal, pinned addresses, size / time / redirect bounds, no network.

Every test runs under the socket spy (tests/net_guard.py): a connection to anything but
loopback fails at the connect call and is recorded, and each test asserts none was attempted.
The no-network case runs in a network namespace of its own (``unshare -rn``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import net_guard
import pytest
from web_servers import BINARY, NEWS_HTML, Route, WebServer

from fourhosts_jupyter.errors import (
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    NetworkUnavailable,
    UnsupportedContent,
    WebError,
)
from fourhosts_jupyter.tools import fetch as fetch_mod
from fourhosts_jupyter.tools.fetch import READABLE_TYPES, USER_AGENT, FetchLimits, address_problem, fetch

offline_network = net_guard.offline_network  # the socket spy (a fixture), used by every test here
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_network(offline_network, monkeypatch):
    monkeypatch.delenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", raising=False)
    yield
    assert offline_network.leaks == []


@pytest.fixture
def site():
    with WebServer({
        "/news": Route(body=NEWS_HTML.encode(), headers={"Content-Type": "text/html; charset=utf-8"}),
        "/to-private": Route(302, headers={"Location": "http://10.20.30.40/admin"}),
        "/to-intranet": Route(302, headers={"Location": "http://intranet.test/"}),
        "/to-metadata": Route(301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}),
        "/to-metadata-name": Route(307, headers={"Location": "http://metadata.test/latest/"}),
        "/to-ipv6-loopback": Route(302, headers={"Location": "http://[::1]:1/"}),
        "/to-file": Route(302, headers={"Location": "file:///etc/passwd"}),
        "/to-news": Route(302, headers={"Location": "/news"}),
        "/loop": Route(302, headers={"Location": "/loop"}),
        "/huge": Route(body=b"<p>" + b"x" * 65_536 + b"</p>", headers={"Content-Type": "text/html"}, chunks=64),
        "/declared-huge": Route(body=b"y" * 2_000_000, headers={"Content-Type": "text/html"}),
        "/slow": Route(body=b"<html>late</html>", headers={"Content-Type": "text/html"}, delay=12.0),
        "/drip": Route(body=b"<p>drop</p>" * 100, headers={"Content-Type": "text/html"}, chunks=60, drip=0.2),
        "/binary": Route(body=BINARY, headers={"Content-Type": "application/octet-stream"}),
        "/image": Route(body=BINARY, headers={"Content-Type": "image/png"}),
    }) as server:
        yield server


def _public_loopback(monkeypatch):
    """Let this test's server at 127.0.0.1 stand in for a public site; every other address is
    judged by the real guard (so a redirect from it to a private address must be refused)."""
    real = fetch_mod.address_problem
    monkeypatch.setattr(fetch_mod, "address_problem",
                        lambda ip, allow: None if str(ip) == "127.0.0.1" else real(ip, allow))


# -- refusals before any connection ----------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/",
                                 "http://2130706433:9/", "http://0x7f.1:9/"])
def test_loopback_is_refused_by_default(url, site):
    with pytest.raises(FetchRefused, match="loopback|refused"):
        fetch(url)
    assert site.requests == []


@pytest.mark.parametrize("url, what", [
    ("http://10.20.30.40/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://100.64.0.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://intranet.test/", "private"),  # a name the resolver maps to 10.20.30.40
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://169.254.10.10/", "link-local"),
    ("http://240.0.0.1/", "reserved"),
])
def test_private_and_special_addresses_are_refused(url, what, offline_network):
    with pytest.raises(FetchRefused, match=what):
        fetch(url)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.test/computeMetadata/v1/",  # resolves to 169.254.169.254
    "http://[fd00:ec2::254]/latest/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://168.63.129.16/machine",
])
def test_metadata_addresses_stay_refused_even_with_allow_private(url, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")
    with pytest.raises(FetchRefused, match="cloud metadata|link-local"):
        fetch(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://127.0.0.1:70/",
                                 "javascript:alert(1)", "data:text/html,hi", "//example.org/x",
                                 "http://user:pw@127.0.0.1/"])
def test_non_http_schemes_and_credentials_are_refused(url):
    with pytest.raises(FetchRefused):
        fetch(url, allow_private=True)


def test_an_unknown_name_fails_as_no_network(offline_network):
    with pytest.raises(NetworkUnavailable, match="cannot resolve 'nowhere.example'"):
        fetch("https://nowhere.example/page")
    assert "nowhere.example" in offline_network.lookups


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, what", [
    ("/to-private", "10.20.30.40"),
    ("/to-intranet", "intranet.test \\(10.20.30.40\\)"),
    ("/to-metadata", "cloud metadata"),
    ("/to-metadata-name", "cloud metadata"),
    ("/to-ipv6-loopback", "loopback"),
    ("/to-file", "scheme 'file'"),
])
def test_every_redirect_hop_is_checked(path, what, site, monkeypatch):
    _public_loopback(monkeypatch)
    with pytest.raises(FetchRefused, match=what):
        fetch(f"{site.url}{path}")
    assert [r.path for r in site.requests] == [path]


def test_metadata_redirect_is_refused_even_with_allow_private(site, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")
    with pytest.raises(FetchRefused, match="cloud metadata"):
        fetch(f"{site.url}/to-metadata")


def test_redirects_are_followed_and_bounded(site, monkeypatch):
    monkeypatch.setenv("FOURHOSTS_FETCH_ALLOW_PRIVATE", "1")
    got = fetch(f"{site.url}/to-news")
    assert got.url == f"{site.url}/news" and got.redirects == (f"{site.url}/to-news",)
    assert got.status == 200 and b"Hoboken" in got.body
    with pytest.raises(FetchRefused, match="redirected more than 3 times"):
        fetch(f"{site.url}/loop", limits=FetchLimits(max_redirects=3))
    assert site.hits("/loop") == 4


# -- the connection goes to the checked address ----------------------------------------------


def test_the_checked_address_is_pinned_and_the_name_kept(site, offline_network):
    answers = [["127.0.0.1"], ["10.20.30.40"]]  # a rebinding resolver: safe first, private next
    calls = []

    def rebinding(host, port):
        calls.append(host)
        return answers[min(len(calls) - 1, 1)]

    got = fetch(f"http://rebind.test:{site.port}/news", resolver=rebinding, allow_private=True)
    assert got.address == "127.0.0.1" and got.status == 200
    assert calls == ["rebind.test"]  # resolved once, by the guard
    assert "rebind.test" not in offline_network.lookups  # httpx never resolved it again
    seen = site.requests[-1]
    assert seen.headers["host"] == f"rebind.test:{site.port}"
    assert seen.headers["user-agent"] == USER_AGENT


def _certificate(tmp_path, name):
    from system_packages import require

    openssl = require("openssl")
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("cert_name, ok", [("pages.test", True), ("other.test", False)])
def test_https_to_the_pinned_address_keeps_sni_and_verifies_the_name(tmp_path, cert_name, ok):
    """The connection goes to the checked IP, yet TLS sends the name (SNI) and the certificate
    is verified for the name, not the IP."""
    import ssl

    cert, key = _certificate(tmp_path, cert_name)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with WebServer({"/news": Route(body=NEWS_HTML.encode(), headers={"Content-Type": "text/html"})},
                   tls=server_ctx) as server:
        url = f"https://pages.test:{server.port}/news"  # the test resolver maps pages.test → 127.0.0.1
        if ok:
            got = fetch(url, allow_private=True, verify=client_ctx)
            assert got.status == 200 and got.address == "127.0.0.1" and b"Hoboken" in got.body
            assert server.requests[-1].headers["host"] == f"pages.test:{server.port}"
        else:
            with pytest.raises(WebError, match="CERTIFICATE_VERIFY_FAILED|certificate|hostname"):
                fetch(url, allow_private=True, verify=client_ctx)
    assert sni and set(sni) == {"pages.test"}


# -- size and time bounds --------------------------------------------------------------------


def test_a_huge_page_is_cut_off_at_the_cap(site):
    t0 = time.monotonic()
    with pytest.raises(FetchTooLarge, match="larger than the 1,048,576-byte cap"):
        fetch(f"{site.url}/huge", allow_private=True, limits=FetchLimits(max_bytes=1 << 20))
    assert time.monotonic() - t0 < 10
    with pytest.raises(FetchTooLarge, match="2,000,000 bytes, over the 1,048,576-byte cap"):
        fetch(f"{site.url}/declared-huge", allow_private=True, limits=FetchLimits(max_bytes=1 << 20))


def test_a_slow_page_times_out_within_the_bound(site):
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout, match="did not answer within 1 s"):
        fetch(f"{site.url}/slow", allow_private=True, limits=FetchLimits(total_timeout=1.0))
    assert time.monotonic() - t0 < 6  # cut off long before the server's 12 s (a loaded machine is slow)


def test_a_dripping_page_is_bounded_by_the_total_time(site):
    t0 = time.monotonic()
    with pytest.raises(FetchTimeout, match="took longer than 1 s"):
        fetch(f"{site.url}/drip", allow_private=True, limits=FetchLimits(total_timeout=1.0))
    assert time.monotonic() - t0 < 6  # the whole page would take 12 s


def test_binary_types_are_refused_from_the_headers(site):
    for path, media in (("/binary", "application/octet-stream"), ("/image", "image/png")):
        with pytest.raises(UnsupportedContent, match=f"is {media}, which cannot be read"):
            fetch(f"{site.url}{path}", allow_private=True, allowed_types=READABLE_TYPES)


def test_address_rules():
    import ipaddress

    ip = ipaddress.ip_address
    assert address_problem(ip("93.184.215.14"), False) is None
    assert address_problem(ip("127.0.0.1"), True) is None
    assert address_problem(ip("10.0.0.1"), True) is None
    assert "metadata" in address_problem(ip("fd00:ec2::254"), True)
    assert "link-local" in address_problem(ip("fe80::1"), True)


# -- no network ------------------------------------------------------------------------------


NO_NETWORK_SCRIPT = r"""
import json, time
import ddgs, httpx  # imported before the clock starts: only the failing call is timed
from fourhosts_jupyter.errors import WebError
from fourhosts_jupyter.tools.fetch import fetch
from fourhosts_jupyter.tools.web import search_web
from fourhosts_jupyter.tools.context import ParadigmAwareToolContext
out = {}
for name, call in (("fetch", lambda: fetch("https://example.org/")),
                   ("search", lambda: search_web("vision zero", ParadigmAwareToolContext()))):
    t0 = time.monotonic()
    try:
        call()
        out[name] = ["no error", 0]
    except WebError as exc:
        out[name] = [exc.kind, time.monotonic() - t0, str(exc)]
print(json.dumps(out))
"""


def test_with_no_network_the_tools_fail_fast_with_a_structured_error():
    """In a network namespace with only loopback (nothing can leave it), with the real
    resolver and every keyless back-end (ddgs) enabled."""
    from system_packages import require, unavailable

    require("unshare", "util-linux")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        unavailable(f"unshare -rn is not permitted here: {probe.stderr.decode().strip()}")
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "FOURHOSTS_SEARCH_BACKENDS": "searxng,ddgs", "FOURHOSTS_SEARXNG_URL": "https://searx.example",
           "FOURHOSTS_HOME": "/tmp/fh-no-network"}
    done = subprocess.run(["unshare", "-rn", sys.executable, "-c", NO_NETWORK_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["fetch"][0] == "network_unavailable" and out["fetch"][1] < 5.0, out
    assert "answer from memory" in out["fetch"][2]
    assert out["search"][0] == "network_unavailable" and out["search"][1] < 15.0, out
