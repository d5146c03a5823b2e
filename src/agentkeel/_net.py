"""Listening sockets for agentkeel's own servers (metrics, health, dashboard)."""

from __future__ import annotations

import errno
import socket

from agentkeel._errors import ConfigurationError


def bind_error(host: str, port: int, exc: OSError) -> ConfigurationError:
    """What to tell a user whose server could not listen on ``host:port``."""
    if exc.errno == errno.EADDRINUSE:
        return ConfigurationError(
            f"port {port} on {host} is already in use: stop the other server or choose "
            "another port (--port)"
        )
    return ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or a ConfigurationError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise bind_error(host, port, exc) from exc
    return sock
