"""No packet leaves loopback from a web test, even when a guard under test is broken.

``offline_network`` (a pytest fixture, autouse in the web test files) replaces, in this process:

- ``socket.getaddrinfo`` by a resolver of the test's own: names in ``NAMES`` map to fixed
  addresses (so "a name that resolves to a private address" is testable without DNS), IP
  literals and ``localhost`` resolve to themselves, every other name fails as with no network;
- ``socket.socket.connect`` / ``connect_ex`` / ``sendto`` by a spy that raises
  ``LeakedConnection`` for any address that is not loopback, before anything is sent, and
  records the attempt in ``offline_network.leaks`` so a test can assert there were none.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

NAMES = {
    "pages.test": "127.0.0.1",
    "intranet.test": "10.20.30.40",
    "metadata.test": "169.254.169.254",
    "public.test": "93.184.215.14",  # a public address: never connected to (the spy refuses)
}


class LeakedConnection(AssertionError):
    """A test tried to reach a non-loopback address."""


class _Guard:
    def __init__(self) -> None:
        self.leaks: list[object] = []
        self.lookups: list[str] = []


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # a unix socket path
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def offline_network(monkeypatch):
    guard = _Guard()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        guard.lookups.append(str(name))
        if name in NAMES:
            name = NAMES[name]
        elif name not in (None, "localhost"):
            try:
                ipaddress.ip_address(str(name).split("%")[0])
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (test resolver)") from None
        return real_getaddrinfo(name, port, family, type, proto, flags | socket.AI_NUMERICHOST
                                if name not in (None, "localhost") else flags)

    def spy(real):
        def wrapped(self, address, *args):
            if not _is_loopback(address):
                guard.leaks.append(address)
                raise LeakedConnection(f"a test tried to reach {address!r}: only loopback is allowed")
            return real(self, address, *args)
        return wrapped

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", spy(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", spy(socket.socket.connect_ex))

    real_sendto = socket.socket.sendto

    def sendto(self, data, *args):
        if not _is_loopback(args[-1]):
            guard.leaks.append(args[-1])
            raise LeakedConnection(f"a test tried to send to {args[-1]!r}")
        return real_sendto(self, data, *args)

    monkeypatch.setattr(socket.socket, "sendto", sendto)
    yield guard
