"""Loopback addresses for servers under test: a free port and a plain HTTP GET.
Never anything but 127.0.0.1."""
from __future__ import annotations

import http.client
import random
import socket
from typing import Optional

HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (20000-30000), so that
    servers under test never collide with client sockets under load."""
    for _ in range(500):
        port = random.randint(20000, 30000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-30000")


def http_get(port: int, path: str, timeout: float = 2.0,
             headers: Optional[dict] = None) -> tuple[int, bytes, dict]:
    """(status, body, lower-cased headers) of a GET on 127.0.0.1:port; raises OSError."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
