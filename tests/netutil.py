"""Shared by the functional and browser tests: a free port for a server under test."""
import random
import socket


def free_port() -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (20000-30000), so that
    servers under test never collide with client sockets under load."""
    for _ in range(500):
        port = random.randint(20000, 30000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-30000")
