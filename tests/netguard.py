"""A socket spy: no test packet may leave for a non-loopback address, even when a guard in the
code under test is broken. Name lookups other than loopback names and connections (TCP
``connect``, UDP ``sendto``) to anything but 127.0.0.0/8 or ::1 fail at the call, before a
packet is sent, and are recorded so the test can assert nothing tried.
"""

from __future__ import annotations

import ipaddress
import socket
from contextlib import contextmanager
from typing import Any, Iterator

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class OutsideNetwork(OSError):
    """Raised in place of a packet to a non-loopback address."""


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Within the block, refuse (and list) every attempt to reach beyond loopback."""
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            attempts.append(str(address[0]))
            raise OutsideNetwork(f"test tried to reach {address[0]} (only loopback is allowed)")

    def connect(self: socket.socket, address: Any) -> Any:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        check(self, address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> Any:
        check(self, args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            attempts.append(host.decode() if isinstance(host, bytes) else str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"test tried to look up {host} (only loopback is allowed)")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = real_sendto  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo  # type: ignore[assignment]
