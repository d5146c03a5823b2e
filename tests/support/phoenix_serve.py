"""Run ``phoenix serve`` with its gRPC receiver bound to loopback. Phoenix's interpreter runs it.

Phoenix binds its OTLP/gRPC receiver to every interface (``[::]``) whatever
``PHOENIX_HOST`` says. Our tests export over OTLP/HTTP only, so the gRPC listener is
only exposure: this wrapper rewrites its bind address to 127.0.0.1 before Phoenix
starts, and leaves everything else as Phoenix ships it.

    <phoenix-venv>/bin/python tests/support/phoenix_serve.py
"""

from __future__ import annotations

import sys

import grpc.aio._server as grpc_aio_server

_add_insecure_port = grpc_aio_server.Server.add_insecure_port


def _loopback_only(self: grpc_aio_server.Server, address: str) -> int:
    _, _, port = address.rpartition(":")
    return _add_insecure_port(self, f"127.0.0.1:{port}")


grpc_aio_server.Server.add_insecure_port = _loopback_only  # type: ignore[method-assign]

if __name__ == "__main__":
    from phoenix.server.main import main

    sys.argv = ["phoenix", "serve"]
    sys.exit(main())
