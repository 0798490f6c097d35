"""A real Redis server (Debian's `redis-server`) on a free loopback port, for the store tests.

No persistence, nothing outside the test's temporary directory. When `redis-server` is not
installed the tests that need it are skipped, saying so (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_REASON = (
    "redis-server is not installed: the Redis store tests need a real server "
    "(Debian: apt-get install redis-server; .ci/run installs it when it can)"
)


@dataclass
class RunningRedis:
    port: int
    proc: asyncio.subprocess.Process
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_redis(directory: Path, port: int | None = None) -> RunningRedis:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(SKIP_REASON)
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(directory), "--daemonize", "no", "--loglevel", "warning"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    redis = RunningRedis(port, proc, directory)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while loop.time() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode} (port {port} taken?)")
        if await _pings(port):
            return redis
        await asyncio.sleep(0.02)
    await stop_redis(redis)
    raise RuntimeError("redis-server did not answer within 10 s")


async def _pings(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def stop_redis(redis: RunningRedis, kill: bool = False) -> None:
    """Stop it: SIGKILL (`kill`, as a crash would) or SIGTERM."""
    if redis.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            redis.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        await asyncio.wait_for(redis.proc.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            redis.proc.kill()
        await redis.proc.wait()
