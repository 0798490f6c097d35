"""`prefire replay --live`: sessions captured through `prefire run --capture` (the traffic of
the foundation's and the speculation tests' end-to-end scenarios, in one capture) are
played back through a real prefire proxy, without and with speculation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from mitmproxy import io as mitm_io

from prefire.proxy.state import PROXY_ENV_KEYS
from tests import openai_wire
from tests.agent_script import weather_conversation
from tests.conftest import point_env_at, start_proxy, stop_proxy
from tests.mcp_server import serve_mcp
from tests.spec_fixtures import DataFlowLLM, ScriptedLLM, agent_loop, agent_step, llm_only
from tests.test_e2e_proxy import ROUTES, _fetch
from tests.test_e2e_speculation import shop_server, weather_server
from tests.upstreams import GzipUpstream, LLMUpstream, free_socket, serve

RULES = """
rules:
  - match: {tool: ["get_*", "search"]}
    prefire: true
    ttl: 30
  - match: {tool: "book_*"}
    prefire: false
    invalidates: ["get_*"]
"""
PACED_GAPS_S = (0.12, 0.2, 0.15)
ROOT = Path(__file__).resolve().parent.parent


class PacedLLM:
    """A streamed chat answer whose chunks come PACED_GAPS_S apart."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        words = ["It", " is", " sunny", " today."]
        for i, word in enumerate(words):
            await resp.write(openai_wire.data(openai_wire.chunk({"content": word}, chunk_id="p1")))
            if i < len(PACED_GAPS_S):
                await asyncio.sleep(PACED_GAPS_S[i])
        await resp.write(openai_wire.DONE)
        await resp.write_eof()
        return resp


async def _capture(tmp: Path, tls: ssl.SSLContext) -> Path:
    """One `prefire run --capture` (speculating, as the speculation tests do) in front of the
    end-to-end scenarios; returns the capture directory."""
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    proxy = await start_proxy(tmp, "--rules", str(rules))
    with pytest.MonkeyPatch.context() as mp:
        point_env_at(proxy, mp)
        # the foundation's: every API shape (gzip, SSE, JSON), through httpx, then the SDK
        gz = GzipUpstream(gap_s=0.01)
        async with serve(gz.app) as base, httpx.AsyncClient(proxy=proxy.url) as via:
            for path, body in ROUTES:
                await _fetch(via, base + path, body)
        await weather_conversation("sk-live")
        async with serve(LLMUpstream().app, ssl_context=tls) as https_base:  # a TLS origin
            client = openai.AsyncOpenAI(base_url=https_base + "/v1", api_key="sk-live")
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi over TLS"}]
            )
            await client.close()
        async with serve(PacedLLM().app) as paced:
            client = openai.AsyncOpenAI(base_url=paced + "/v1", api_key="sk-live")
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "weather, slowly"}], stream=True
            )
            async for _ in stream:
                pass
            await client.close()
        # the speculation tests': one MCP server, a read run early, a write, a call the
        # agent never makes, and a search -> get_item data flow
        server = weather_server(delay_s=0.25)
        async with serve_mcp(server) as mcp_url:
            script = [
                ("get_weather", {"city": "Paris"}),
                ("book_table", {"restaurant": "Noma"}),
                ("get_weather", {"city": "Rome"}),
            ]
            llm = ScriptedLLM(script, think_after_s=0.4)
            async with serve(llm.app) as llm_url:
                await agent_step(llm_url, mcp_url, api_key="sk-a", mcp_token="tok-a")
                llm.think_after_s = 0.1
                await agent_step(llm_url, mcp_url, api_key="sk-a", mcp_token="tok-a")
                llm.think_after_s = 0.3
                await llm_only(llm_url, mcp_url, api_key="sk-a", mcp_token="tok-a")
        async with serve_mcp(shop_server()) as mcp_url, serve(DataFlowLLM(0.15).app) as llm_url:
            for word in ("shoes", "hats"):
                await agent_loop(llm_url, mcp_url, f"find me {word}", api_key="k", mcp_token="t")
        # and a request whose upstream is gone: captured with no response
        dead = free_socket()
        port = dead.getsockname()[1]
        dead.close()
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/v1/models")
    assert await stop_proxy(proxy) == 0
    shutil.copy(rules, proxy.capture_dir / "rules.yaml")
    return proxy.capture_dir


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PROXY_ENV_KEYS}


def prefire(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefire.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(),
        check=False,
    )


def live(*args: str) -> tuple[dict[str, Any], str]:
    proc = prefire("replay", "--live", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def flows_of(capture: Path) -> list[Any]:
    (path,) = capture.glob("flows-*.mitm")
    with path.open("rb") as fh:
        return list(mitm_io.FlowReader(fh).stream())


def subset(capture: Path, out: Path, keep: Any) -> Path:
    """A .mitm file with the capture's flows that `keep` selects, in order."""
    with out.open("wb") as fh:
        writer = mitm_io.FlowWriter(fh)
        for f in flows_of(capture):
            if keep(f):
                writer.add(f)
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory, self_signed: ssl.SSLContext) -> Path:
    return asyncio.run(_capture(tmp_path_factory.mktemp("live"), self_signed))


@pytest.fixture(scope="module")
def played(capture: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The whole capture played live (twice as fast), with its rules; (report, html, stderr)."""
    html = tmp_path_factory.mktemp("html") / "timeline.html"
    rules = capture / "rules.yaml"
    report, err = live(
        str(capture), "--rules", str(rules), "--speed", "2", "--tool-latency", "0.25",
        "--html", str(html),
    )  # fmt: skip
    yield report, html, err


def test_round_trip_same_requests_and_same_responses(capture: Path, played: tuple) -> None:
    report, _, _ = played
    recorded = flows_of(capture)
    totals = report["totals"]
    assert totals["requests"] == len(recorded)
    assert totals["requests_sent"] == {"baseline": len(recorded), "speculative": len(recorded)}
    # every response the client got is the recorded one, in both passes
    assert totals["same_as_recorded"] and totals["identical"]
    assert all(s["identical"] and s["same_as_recorded"] for s in report["sessions"])
    # responses prefire served from speculation when capturing kept their bodies
    served = [f for f in recorded if f.metadata.get("prefire.served")]
    assert served and all(f.response.raw_content for f in served)
    # a TLS origin went through the playback's TLS door like the rest
    assert any(f.request.scheme == "https" for f in recorded)
    # speculation did its work: the eager reads were served, some of them while still running
    assert totals["hits"] >= 3 and totals["promotions"] >= 1
    assert report["input_errors"] == []


def test_offline_and_live_agree_on_hits_or_say_why(capture: Path, played: tuple) -> None:
    report, _, _ = played
    offline = prefire("replay", str(capture), "--rules", str(capture / "rules.yaml"), "--json")
    assert offline.returncode == 0, offline.stderr
    assert report["totals"]["offline_hits"] == json.loads(offline.stdout)["hits"]
    for s in report["sessions"]:
        why = s["hits_differ"]
        live_only = sum(why[k]["calls"] for k in ("eager", "predicted_live_only") if k in why)
        offline_only = sum(
            v["calls"] for k, v in why.items() if k not in ("eager", "predicted_live_only")
        )
        assert s["hits"] - s["offline_hits"] == live_only - offline_only, s
        assert all(v["why"] for v in why.values())
    # the eager reads are hits live and not offline, and the report says so
    assert any("eager" in s["hits_differ"] for s in report["sessions"])


def test_write_tool_is_never_fired(played: tuple) -> None:
    report, _, _ = played
    assert "book_table" not in report["speculative_requests"]
    calls = report["upstream_calls"]
    assert calls["baseline"]["book_table"] == calls["speculative"]["book_table"] == 1
    assert report["speculative_requests"].get("get_weather", 0) >= 2


def test_unmatched_and_unrecorded_requests_are_reported(played: tuple) -> None:
    report, _, _ = played
    (lost,) = [u for u in report["unmatched"] if "/v1/models" in u["url"]]
    assert "recorded without a response" in lost["why"]
    # the call the agent never made (get_weather Rome) was started early: the recording has
    # no answer, so it took the tool's time, got an error and counted as wasted
    (rome,) = [u for u in report["unrecorded_speculative"] if u["tool"] == "get_weather"]
    assert rome["why"] == "the recording has no answer for this call"
    assert rome["answered_after_s"] >= 0.25 / 2 * 0.9  # --tool-latency at --speed 2
    assert report["totals"]["wasted"] >= 1


def test_streamed_chunks_keep_their_timing_at_speed_1(capture: Path, tmp_path: Path) -> None:
    paced = subset(capture, tmp_path / "paced.mitm", lambda f: b"slowly" in f.request.content)
    report, _ = live(str(paced))
    timing = report["stream_timing"]["baseline"]
    assert timing["streams"] == 1 and timing["gaps"] == len(PACED_GAPS_S)
    assert timing["max_gap_error"] <= 0.10, timing
    assert timing["max_stream_error"] <= 0.10, timing
    assert report["stream_timing"]["speculative"]["max_gap_error"] <= 0.10


def test_a_corrupted_flow_is_named_and_the_rest_replays(capture: Path, tmp_path: Path) -> None:
    first = [f.id for f in flows_of(capture) if f.request.path.startswith("/v1/chat")][:6]
    chat = subset(capture, tmp_path / "chat.mitm", lambda f: f.id in first)
    data = chat.read_bytes()
    with chat.open("rb") as fh:
        flows = list(mitm_io.FlowReader(fh).stream())
    # damage the third flow inside its record: a length prefix that is not a number
    third = flows[2]
    at = data.index(third.id.encode())
    start = data.rindex(b"15:timestamp_start;", 0, at)
    broken = tmp_path / "broken.mitm"
    broken.write_bytes(data[:start] + b"1X" + data[start + 2 :])
    report, err = live(str(broken))
    assert f"broken.mitm:3: flow 3 (id {third.id}) cannot be read" in err
    assert report["input_errors"] and third.id in report["input_errors"][0]
    # the other flows, and the sessions they make, still play back
    assert report["totals"]["requests_sent"]["baseline"] == len(flows) - 1
    assert report["totals"]["sessions"] >= 3
    assert report["totals"]["same_as_recorded"] and report["totals"]["identical"]


def test_timeline_page_renders_and_matches_the_json(played: tuple, tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (apt-get install chromium): cannot render")
    report, html, _ = played
    figures = tmp_path / "report.json"
    figures.write_text(json.dumps(report))
    check = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "check_html.py"), str(figures), str(html)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "sessions checked" in check.stdout
