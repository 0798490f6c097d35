"""Helpers the benchmark scripts share (run as `python bench/x.py`, so imported by name)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at this moment, for a server that must be told its port up front (the
    tiny race with another process taking it meanwhile is acceptable here)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
