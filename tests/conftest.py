"""Shared fixtures: a real `prefire run` subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from mitmproxy import io as mitm_io

from prefire.proxy.state import PROXY_ENV_KEYS
from prefire.replay.playback import self_signed_context


@dataclass
class RunningProxy:
    url: str
    ca_cert: Path
    state_dir: Path
    capture_dir: Path
    proc: asyncio.subprocess.Process
    args: tuple[str, ...] = ()  # the extra arguments of `prefire run`

    @property
    def ca_bundle(self) -> Path:
        return self.state_dir / "ca-bundle.pem"

    def env(self) -> dict[str, str]:
        return {
            "HTTPS_PROXY": self.url,
            "HTTP_PROXY": self.url,
            "SSL_CERT_FILE": str(self.ca_bundle),
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def events(self) -> list[dict]:
        out: list[dict] = []
        for path in sorted(self.capture_dir.glob("events-*.jsonl")):
            out += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
        return out

    def flows(self) -> list[Any]:
        """The captured flows, read back with mitmproxy's reader (raises if a file is corrupt)."""
        out: list[Any] = []
        for path in sorted(self.capture_dir.glob("flows-*.mitm")):
            with path.open("rb") as fh:
                out += list(mitm_io.FlowReader(fh).stream())
        return out

    def capture_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in sorted(self.capture_dir.iterdir()))


async def start_proxy(
    tmp: Path, *extra: str, log: Path | None = None, preexec_fn: Any = None
) -> RunningProxy:
    """`prefire run` on a free port; its stderr (the structlog lines, JSON) goes to `log`
    if given, else inherited."""
    state, capture = tmp / "state", tmp / "capture"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}
    err = None if log is None else log.open("ab")  # the child keeps its own copy
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "prefire.cli.main",
            "run",
            "--listen-port",
            "0",
            "--state-dir",
            str(state),
            "--capture",
            str(capture),
            "--ssl-insecure",
            "--log-format",
            "json",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
            preexec_fn=preexec_fn,
        )
    finally:
        if err is not None:
            err.close()
    _STARTED.append(proc)
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    second = (await asyncio.wait_for(proc.stdout.readline(), 5)).decode().strip()
    assert first.startswith("prefire listening on http://127.0.0.1:"), first
    assert second.startswith("CA certificate: "), second
    return RunningProxy(
        url=first.removeprefix("prefire listening on "),
        ca_cert=Path(second.removeprefix("CA certificate: ")),
        state_dir=state,
        capture_dir=capture,
        proc=proc,
        args=extra,
    )


# every proxy a test started, so that one a failed test left running is stopped
_STARTED: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
def _no_proxy_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


async def stop_proxy(proxy: RunningProxy) -> int:
    if proxy.proc.returncode is None:
        proxy.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proxy.proc.wait(), 20)


@pytest.fixture
async def prefire(tmp_path: Path) -> AsyncIterator[RunningProxy]:
    proxy = await start_proxy(tmp_path)
    try:
        yield proxy
    finally:
        assert await stop_proxy(proxy) == 0


async def eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait until `condition` holds, checking every 20 ms, for at most `timeout_s` (then
    return: the test's own assertions say what did not happen). Instead of sleeping a
    fixed time that is too long on a fast machine and too short on a loaded one."""
    # polled: what it waits for (a log line, a count in another task) signals nothing
    deadline = time.monotonic() + timeout_s
    for _ in itertools.count():
        if condition() or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.02)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a proxy started with `log=path` wrote."""
    out = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            record = orjson.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


def point_env_at(proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch) -> RunningProxy:
    """Point this process's HTTP clients at the proxy through the environment only."""
    for key in PROXY_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in proxy.env().items():
        monkeypatch.setenv(key, value)
    return proxy


@pytest.fixture
def proxied_env(prefire: RunningProxy, monkeypatch: pytest.MonkeyPatch) -> RunningProxy:
    return point_env_at(prefire, monkeypatch)


@pytest.fixture(scope="session")
def self_signed() -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for localhost."""
    return self_signed_context("localhost")
