"""Faults: upstreams that reset, hang, fail or drip; tool servers that die or hang under a
speculative call; corrupt state at start. The agent sees what it would see without
prefire, speculative failures never surface, errors are never served from speculation,
and the proxy keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from prefire.patterns import snapshot
from prefire.proxy.learner import Learner
from tests.conftest import (
    RunningProxy,
    eventually,
    log_lines,
    point_env_at,
    start_proxy,
    stop_proxy,
)
from tests.spec_fixtures import ScriptedLLM
from tests.test_e2e_speculation import stats
from tests.upstreams import free_socket, openai_chat_json, openai_chat_stream, serve

CHAT = "/v1/chat/completions"
REQUEST = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"Authorization": "Bearer sk-faults"}


def reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST, as a crashing server or a middlebox does."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class FaultyUpstream:
    """POST /v1/chat/completions misbehaving as the x-fault header says."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post(CHAT, self.chat)
        self.released = asyncio.Event()  # set: hung handlers return (so the server can stop)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        fault = request.headers.get("x-fault", "")
        chunks = openai_chat_stream()
        if fault == "reset-before-headers":
            reset(request)
            raise web.HTTPInternalServerError  # never sent: the connection is gone
        if fault.startswith("status-"):
            status = int(fault.removeprefix("status-"))
            # an error body that looks like a tool call must not be learned from
            return web.json_response(
                openai_chat_json(), status=status, headers={"Retry-After": "1"}
            )
        if fault == "sse-400":
            resp = web.StreamResponse(status=400, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(chunks[1])
            await resp.write_eof()
            return resp
        if fault == "gzip-503":
            return web.Response(
                status=503,
                body=gzip.compress(b'{"error": {"message": "overloaded"}}', mtime=0),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        if fault == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), 30)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if fault == "drip":  # slow loris: one byte at a time
            for b in b"".join(chunks[:2]):
                await resp.write(bytes([b]))
                await asyncio.sleep(0.002)
        else:
            for c in chunks[:3]:
                await resp.write(c)
                await asyncio.sleep(0.02)
        if fault == "reset-mid-stream":
            reset(request)
            return resp
        await resp.write_eof()
        return resp


async def fetch(client: httpx.AsyncClient, url: str, fault: str, limit_s: float = 10) -> tuple:
    """(status, headers, body bytes received, error class or None, chunk arrival times)."""
    body, times, status, headers, error = b"", [], None, [], None
    t0 = time.monotonic()
    try:
        async with client.stream(
            "POST", url, json=REQUEST, headers={**AUTH, "x-fault": fault}, timeout=limit_s
        ) as resp:
            status = resp.status_code
            headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() != "date"]
            async for chunk in resp.aiter_raw():
                body += chunk
                times.append(time.monotonic() - t0)
    except httpx.TransportError as exc:
        error = type(exc)
    return status, headers, body, error, times


async def test_upstream_faults_reach_the_agent_as_they_would_without_prefire(
    tmp_path: Path,
) -> None:
    proxy = await start_proxy(tmp_path)
    up = FaultyUpstream()
    try:
        async with (
            serve(up.app) as base,
            httpx.AsyncClient(trust_env=False) as direct,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False) as via,
        ):
            url = base + CHAT
            for fault in ("status-500", "status-429", "status-400", "sse-400", "gzip-503"):
                d, p = await fetch(direct, url, fault), await fetch(via, url, fault)
                assert p[:4] == d[:4], fault
            # reset mid-stream: the same bytes, then the same kind of end (a broken stream)
            d = await fetch(direct, url, "reset-mid-stream")
            p = await fetch(via, url, "reset-mid-stream")
            assert d[0] == p[0] == 200 and p[2] == d[2] and d[2]
            assert d[3] is not None and p[3] is not None
            # reset before any response: a proxy can only answer 502 (bare mitmproxy too)
            p = await fetch(via, url, "reset-before-headers")
            assert p[0] == 502
            # a hung upstream: the agent's own timeout fires, as without prefire...
            hung = asyncio.create_task(fetch(via, url, "hang", limit_s=1.5))
            await asyncio.sleep(0.2)
            # ...while other requests go on, undelayed
            t0 = time.monotonic()
            ok = await fetch(via, url, "")
            assert ok[0] == 200 and ok[3] is None and time.monotonic() - t0 < 1.0
            assert (await hung)[3] is httpx.ReadTimeout
            # slow loris upstream: every byte is passed on as it comes, not held back
            d = await fetch(direct, url, "drip")
            p = await fetch(via, url, "drip")
            assert p[:4] == d[:4]
            assert len(p[4]) > 20 and p[4][0] < 0.5
            # and the proxy still serves normally
            assert (await fetch(via, url, ""))[0] == 200
            up.released.set()
    finally:
        assert await stop_proxy(proxy) == 0
    # error responses are not learned from, though their bodies hold tool calls
    calls = [e for e in proxy.events() if e["kind"] == "tool_call"]
    assert {c["call_id"] for c in calls} <= {"call_a"}, calls


async def test_a_slow_client_does_not_hold_up_others(tmp_path: Path) -> None:
    proxy = await start_proxy(tmp_path)
    up = FaultyUpstream()
    host, port = proxy.url.removeprefix("http://").split(":")
    try:
        async with serve(up.app) as base, httpx.AsyncClient(proxy=proxy.url) as via:
            # a client that sends its request one byte every 50 ms
            _, writer = await asyncio.open_connection(host, int(port))
            head = f"POST {base}{CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"

            async def drip() -> None:
                for ch in head.encode():
                    writer.write(bytes([ch]))
                    await writer.drain()
                    await asyncio.sleep(0.05)

            dripping = asyncio.create_task(drip())
            latencies = []
            for _ in range(10):
                t0 = time.monotonic()
                r = await fetch(via, base + CHAT, "")
                assert r[0] == 200 and r[3] is None
                latencies.append(time.monotonic() - t0)
            assert not dripping.done()  # the slow client was still sending all along
            assert max(latencies) < 1.5, latencies
            dripping.cancel()
            writer.close()
    finally:
        assert await stop_proxy(proxy) == 0


# -- speculative calls that fail ----------------------------------------------------------


REST_RULES = """
rules:
  - match: {tool: get_weather}
    prefire: true
    ttl: 30
    rest: {method: GET, url: "%(base)s/v1/weather?city={city}"}
"""


async def rest_agent_step(llm: str, tool_base: str, city: str) -> tuple[dict, float]:
    """The LLM asks for get_weather(city); the agent runs it as a GET. Returns the result
    and the seconds the agent's own GET took."""
    client = openai.AsyncOpenAI(base_url=llm + "/v1", api_key="sk-a")
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"weather in {city}?"}], stream=True
    )
    args = ""
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            args += tc.function.arguments or ""
    await client.close()
    async with httpx.AsyncClient(timeout=30) as http:  # proxy and CA from the environment
        t0 = time.monotonic()
        resp = await http.get(tool_base + "/v1/weather", params=json.loads(args))
        return resp.json(), time.monotonic() - t0


async def proxy_with_rest_rules(tmp: Path, monkeypatch, base: str) -> RunningProxy:
    rules = tmp / "rules.yaml"
    rules.write_text(REST_RULES % {"base": base})
    proxy = await start_proxy(tmp, "--rules", str(rules))
    point_env_at(proxy, monkeypatch)
    return proxy


async def read_line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 10)).decode().strip()


async def start_tool_server(port: int, delay_s: float) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.rest_tool_server", str(port), str(delay_s),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert await read_line(proc.stdout) == "ready"
    return proc


async def test_tool_server_dies_during_a_speculative_call(tmp_path: Path, monkeypatch) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    base = f"http://127.0.0.1:{port}"
    proxy = await proxy_with_rest_rules(tmp_path, monkeypatch, base)
    server = await start_tool_server(port, delay_s=2.0)
    assert server.stdout is not None
    llm_app = ScriptedLLM([("get_weather", {"city": "Oslo"})], think_after_s=0.6)
    try:
        async with serve(llm_app.app) as llm:
            step = asyncio.create_task(rest_agent_step(llm, base, "Oslo"))
            # the early call reaches the tool server; it dies before it can answer
            assert await read_line(server.stdout) == "call Oslo"
            server.send_signal(signal.SIGKILL)
            await server.wait()
            server = await start_tool_server(port, delay_s=0.05)
            assert server.stdout is not None
            got, _ = await asyncio.wait_for(step, 20)
            # the agent's own call went to the new server, and got its answer
            assert await read_line(server.stdout) == "call Oslo"
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.kill()
        await server.wait()
    assert got == {"city": "Oslo", "sky": "clear"}
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["failed"] == 1 and counters["used"] == 0


class FlakyWeather:
    """GET /v1/weather: answers in `delay_s`, except as told: `hang` hangs the first call
    for a city, `fail` answers the first call with a 500 (or an empty 200 body)."""

    def __init__(self, delay_s: float = 0.1) -> None:
        self.delay_s = delay_s
        self.hang: set[str] = set()
        self.fail: dict[str, int] = {}
        self.calls: list[str] = []
        self.released = asyncio.Event()  # set: hung calls return (so the server can stop)
        self.app = web.Application()
        self.app.router.add_get("/v1/weather", self.weather)

    async def weather(self, request: web.Request) -> web.Response:
        city = request.query["city"]
        first = city not in self.calls
        self.calls.append(city)
        if first and city in self.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), 60)
        await asyncio.sleep(self.delay_s)
        if first and city in self.fail:
            return web.json_response({"error": "try again"}, status=self.fail[city])
        return web.json_response({"city": city, "sky": "clear"})


async def test_a_hung_speculative_call_delays_the_agent_boundedly(
    tmp_path: Path, monkeypatch
) -> None:
    tool = FlakyWeather(delay_s=0.1)
    tool.hang.add("Rome")
    cities = ["Oslo", "Rome"]
    llm_app = ScriptedLLM([("get_weather", {"city": c}) for c in cities], think_after_s=0.3)
    async with serve(tool.app) as base, serve(llm_app.app) as llm:
        proxy = await proxy_with_rest_rules(tmp_path, monkeypatch, base)
        (oslo, _), (rome, waited) = [await rest_agent_step(llm, base, c) for c in cities]
        tool.released.set()
    assert oslo["city"] == "Oslo" and rome["city"] == "Rome"
    # Oslo taught a usual latency of 0.1 s; the hung early call for Rome was waited for
    # 1 s at most (3x usual, at least 1 s), then the agent's own call went upstream (not 60 s)
    assert waited < 3.0, waited
    assert tool.calls == ["Oslo", "Rome", "Rome"]
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["used"] == 1 and counters["wasted"] == 1


async def test_errors_are_never_served_from_speculation(tmp_path: Path, monkeypatch) -> None:
    tool = FlakyWeather(delay_s=0.05)
    tool.fail = {"Oslo": 500, "Rome": 404, "Lima": 503}
    cities = list(tool.fail)
    llm_app = ScriptedLLM([("get_weather", {"city": c}) for c in cities], think_after_s=0.3)
    async with serve(tool.app) as base, serve(llm_app.app) as llm:
        proxy = await proxy_with_rest_rules(tmp_path, monkeypatch, base)
        got = [(await rest_agent_step(llm, base, c))[0] for c in cities]
    # each early call failed; each agent call went upstream and got the real answer
    assert [g.get("city") for g in got] == cities
    assert tool.calls == [c for c in cities for _ in range(2)]
    counters = (await stats(proxy))["tools"]["get_weather"]
    assert counters["failed"] == 3 and counters["used"] == 0


# -- state ----------------------------------------------------------------------------------


DAMAGE = [
    b"",  # empty (a crash before the first write, with a non-atomic writer)
    b"\x00\x01garbage",
    b'{"version": 1, "flow": [[1, 2]]',  # cut off
    b'{"version": 1, "flow": [["a", 1, {}]], "intent": 5}',  # wrong shape
    b'{"version": 99}',
    b"[" * 900 + b"]" * 900,  # deep
]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_corrupt_snapshot_is_set_aside(tmp_path: Path, damage: bytes) -> None:
    (tmp_path / "patterns.json").write_bytes(damage)
    learner = Learner(tmp_path)
    assert learner.model.flow.table.items() == []
    assert [p.read_bytes() for p in tmp_path.glob("patterns.bad-*")] == [damage]
    assert not (tmp_path / "patterns.json").exists()


async def test_corrupt_state_files_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "patterns.json").write_bytes(DAMAGE[2])
    (state / "stats.json").write_bytes(b"{")
    log = tmp_path / "proxy.log"
    proxy = await start_proxy(tmp_path, log=log)
    up = FaultyUpstream()
    try:
        async with serve(up.app) as base, httpx.AsyncClient(proxy=proxy.url) as via:
            assert (await fetch(via, base + CHAT, ""))[0] == 200
    finally:
        assert await stop_proxy(proxy) == 0
    # set aside, not fatal; a good snapshot and stats file were written at shutdown
    assert any(r.get("event") == "patterns.snapshot_unreadable" for r in log_lines(log))
    assert list(state.glob("patterns.bad-*"))
    snapshot.load((state / "patterns.json").read_bytes())
    assert orjson.loads((state / "stats.json").read_bytes())["totals"]["fired"] == 0


async def test_a_corrupt_ca_stops_the_start_with_advice(tmp_path: Path) -> None:
    state = tmp_path / "s"
    for args in (["env"], ["run", "--listen-port", "0"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "prefire.cli.main", *args, "--state-dir", str(state),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        if args == ["env"]:
            assert proc.returncode == 0
            (state / "mitmproxy" / "mitmproxy-ca.pem").write_text("garbage")
        else:
            assert proc.returncode == 2
            assert "cannot be read" in err.decode() and "move" in err.decode()
    stats_file = state / "stats.json"
    stats_file.write_text("{")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prefire.cli.main", "stats", "--state-dir", str(state),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1 and "cannot be read" in err.decode()


# -- a full disk, SIGTERM ---------------------------------------------------------------------


class FullDisk:
    """A file that takes `room` more bytes, then fails as a full disk does (a short
    write, then ENOSPC), until it is given room again."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return self.real.write(data[:n])

    def __getattr__(self, name: str):
        return getattr(self.real, name)


def test_capture_keeps_whole_records_through_a_full_disk(tmp_path: Path) -> None:
    from mitmproxy.test import tflow

    from prefire.patterns.events import SessionKey, ToolCall
    from prefire.proxy.capture import Capture

    cap = Capture(tmp_path)
    session = SessionKey("s", "c")
    events, flows = cap._events, cap._flows

    def write(n: int) -> None:
        cap.write_event(ToolCall(session=session, t=n, call_id=str(n), name="t", arguments={}))
        cap.write_flow(tflow.tflow(resp=True))

    write(0)
    events._fh, flows._fh = FullDisk(events._fh, 30), FullDisk(flows._fh, 500)
    for n in range(1, 4):  # the first two records fit in part only: both are cut away
        write(n)
    events._fh.room = flows._fh.room = 10**6  # room again
    write(4)
    cap.close()
    lines = cap.events_path.read_bytes().splitlines()
    assert [orjson.loads(line)["call_id"] for line in lines] == ["0", "4"]
    with cap.flows_path.open("rb") as fh:
        from mitmproxy import io as mitm_io

        assert len(list(mitm_io.FlowReader(fh).stream())) == 2
    assert events.failures == 3 and flows.failures == 3


def test_state_files_are_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    from prefire.proxy import state as state_mod

    target = tmp_path / "patterns.json"
    state_mod.atomic_write(target, b"old")

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "fsync", full)
    with pytest.raises(OSError):
        state_mod.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["patterns.json"]  # no temporary left


def file_size_limit(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def new_tally() -> dict[str, int]:
    return {"ok": 0, "mismatched": 0, "errors": 0}


async def traffic(
    base: str, proxy_url: str, clients: int, stop: asyncio.Event, tally: dict[str, int]
) -> dict:
    """`clients` agents sending chat requests (JSON and SSE) until `stop`; every answer is
    checked against the upstream's own bytes, and counted in `tally` as it comes."""
    up_json = json.dumps(openai_chat_json()).encode()
    up_sse = b"".join(openai_chat_stream())

    async def agent(n: int) -> None:
        async with httpx.AsyncClient(proxy=proxy_url, trust_env=False, timeout=10) as via:
            i = 0
            while not stop.is_set():
                i += 1
                stream = i % 2 == 0
                body = {**REQUEST, "stream": stream, "user": f"agent-{n}-{i}", "pad": "p" * 4000}
                try:
                    async with via.stream("POST", base, json=body, headers=AUTH) as resp:
                        got = b"".join([c async for c in resp.aiter_raw()])
                except httpx.TransportError:
                    tally["errors"] += 1
                    await asyncio.sleep(0.05)
                    continue
                ok = resp.status_code == 200 and got == (up_sse if stream else up_json)
                tally["ok" if ok else "mismatched"] += 1

    await asyncio.gather(*(agent(n) for n in range(clients)))
    return tally


class SteadyUpstream:
    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post(CHAT, self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(openai_chat_json())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for c in openai_chat_stream():
            await resp.write(c)
        await resp.write_eof()
        return resp


async def test_a_full_capture_disk_costs_no_traffic(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prefire.cli.main", "env", "--state-dir", str(state),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await proc.wait() == 0  # the CA and its bundle exist before the limit applies
    log = tmp_path / "proxy.log"
    # no file of the proxy may grow past 64 kB: the flows file hits it after a few flows
    proxy = await start_proxy(tmp_path, log=log, preexec_fn=file_size_limit(64_000))
    stop = asyncio.Event()
    try:
        async with serve(SteadyUpstream().app) as base:
            tally = new_tally()
            run = asyncio.create_task(traffic(base + CHAT, proxy.url, 4, stop, tally))
            # traffic goes on past the capture's first failed write
            await eventually(
                lambda: (
                    tally["ok"] > 30
                    and any(r.get("event") == "capture.write_failed" for r in log_lines(log))
                )
            )
            stop.set()
            tally = await run
    finally:
        assert await stop_proxy(proxy) == 0
    assert tally["ok"] > 30 and tally["mismatched"] == tally["errors"] == 0, tally
    assert any(r.get("event") == "capture.write_failed" for r in log_lines(log))
    flows = proxy.flows()  # every record whole: the reader would raise on a torn one
    assert 0 < len(flows) < tally["ok"]
    assert all(orjson.loads(line) for line in (proxy.capture_dir.glob("events-*.jsonl").__next__()
                                               .read_bytes().splitlines()))  # fmt: skip


async def test_sigterm_under_heavy_traffic(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    proxy = await start_proxy(tmp_path, log=log)
    stop = asyncio.Event()
    async with serve(SteadyUpstream().app) as base:
        tally = new_tally()
        run = asyncio.create_task(traffic(base + CHAT, proxy.url, 12, stop, tally))
        await eventually(lambda: tally["ok"] > 50)  # heavy traffic under way
        proxy.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert await asyncio.wait_for(proxy.proc.wait(), 20) == 0
        shutdown_s = time.monotonic() - t0
        stop.set()
        tally = await run
    # answers cut by the shutdown fail as connection errors; none is ever wrong
    assert tally["ok"] > 50 and tally["mismatched"] == 0, tally
    assert shutdown_s < 5, shutdown_s
    # everything on disk is whole: captures, the learned state, the stats
    assert len(proxy.flows()) >= tally["ok"]
    for path in proxy.capture_dir.glob("events-*.jsonl"):
        assert all(orjson.loads(line) for line in path.read_bytes().splitlines())
    snapshot.load((proxy.state_dir / "patterns.json").read_bytes())
    assert orjson.loads((proxy.state_dir / "stats.json").read_bytes())["totals"]["fired"] == 0
    # and the next run starts from that state
    again = await start_proxy(tmp_path, log=log)
    assert await stop_proxy(again) == 0
    assert any(r.get("event") == "patterns.loaded" for r in log_lines(log))
