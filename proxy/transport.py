"""How prefire's own requests go out. The caller (proxy/caller.py) sends through a
`Transport`; production uses aiohttp, tests swap in one that answers in memory (the way
httpx's MockTransport lets a client be tested without sockets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from prefire.proxy.cache import BODY_START, Clock, Failure, Result

CALL_TIMEOUT_S = 60.0
# Where a connection for (host, port) really goes: (host, port). Live playback uses it to
# send prefire's own calls to recorded answers instead of the network.
ConnectTo = Callable[[str, int], tuple[str, int]]


class Transport(Protocol):
    async def send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> Result | Failure:
        """The response, whatever its status, or a Failure when none came."""

    async def close(self) -> None: ...


class AiohttpTransport:
    def __init__(
        self,
        verify_tls: bool = True,
        connect_to: ConnectTo | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.verify_tls = verify_tls
        self.connect_to = connect_to
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None

    async def send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> Result | Failure:
        started = self._clock()
        extra: dict[str, Any] = {}
        if self.connect_to is not None:
            url, headers, extra = _connect_to(self.connect_to, url, headers)
        try:
            async with self._client().request(
                method, url, data=data, headers=headers, **extra
            ) as resp:
                body = await resp.read()
                status, ctype = resp.status, resp.headers.get("content-type", "")
                raw_headers = list(resp.raw_headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Failure("unreachable", 0, repr(exc)[:BODY_START])
        return Result(status, raw_headers, body, ctype, self._clock() - started)

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.verify_tls),  # True: verify as usual
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
                auto_decompress=True,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _connect_to(
    connect_to: ConnectTo, url: str, headers: dict[str, str]
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The request sent to where `connect_to` says, as if to the URL's own host: same Host
    header, same TLS server name."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host, port = connect_to(parts.hostname or "", parts.port or default)
    target = urlunsplit(parts._replace(netloc=f"{host}:{port}"))
    extra: dict[str, Any] = {"server_hostname": parts.hostname} if parts.scheme == "https" else {}
    return target, {**headers, "host": parts.netloc}, extra
