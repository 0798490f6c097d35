"""Helpers the benchmark scripts share (run as `python bench/x.py`, so imported by name)."""

from __future__ import annotations

import math
import socket
import sys

import aiohttp


def free_port(host: str = "127.0.0.1") -> int:
    """A port free at this moment, for a server that must be told its port up front (the
    tiny race with another process taking it meanwhile is acceptable here)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, no interpolation between outliers."""
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def session(limit: int) -> aiohttp.ClientSession:
    # Long keep-alive: a round of the other targets must not make us reconnect.
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=120, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
