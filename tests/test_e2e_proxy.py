"""End-to-end: a real `prefire run` between real SDK clients and local upstreams."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from mitmproxy import io as mitm_io

from tests.agent_script import weather_conversation
from tests.conftest import RunningProxy, start_proxy, stop_proxy
from tests.upstreams import TIME_ARGS, WEATHER_ARGS, GzipUpstream, LLMUpstream, serve

SECRET = "sk-planted-secret-7f3a9"

ROUTES = [
    (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}),
    (
        "/v1/messages",
        {
            "model": "claude",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ),
    (
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
    (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    ),
    (
        "/gateway/openai/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "/gateway/openai/v1/chat/completions",
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    ("/not/an/api", {"hello": "world"}),
]


async def _fetch(
    client: httpx.AsyncClient, url: str, body: dict
) -> tuple[int, list, bytes, list[bytes]]:
    chunks: list[bytes] = []
    headers = {"Authorization": f"Bearer {SECRET}", "Accept-Encoding": "gzip"}
    async with client.stream("POST", url, json=body, headers=headers) as resp:
        async for chunk in resp.aiter_raw():
            chunks.append(chunk)
        hdrs = [(k, v) for k, v in resp.headers.multi_items() if k.lower() != "date"]
        return resp.status_code, hdrs, b"".join(chunks), chunks


async def test_every_api_passes_through_byte_identical(prefire: RunningProxy) -> None:
    up = GzipUpstream(gap_s=0.02)
    async with (
        serve(up.app) as base,
        httpx.AsyncClient(trust_env=False) as direct,
        httpx.AsyncClient(proxy=prefire.url, trust_env=False) as via,
    ):
        for path, body in ROUTES:
            d = await _fetch(direct, base + path, body)
            p = await _fetch(via, base + path, body)
            assert p[:3] == d[:3], path
            if body.get("stream"):
                # forwarded chunk by chunk, not buffered into one
                assert len(p[3]) > 1, path
    events = prefire.events()
    names = [(e["kind"], e.get("name")) for e in events if e["kind"] == "tool_call"]
    # chat json, chat stream (2 calls), responses, anthropic, gemini x2, gzip json + stream (2)
    assert names.count(("tool_call", "get_weather")) == 8
    assert names.count(("tool_call", "get_time")) == 2
    assert all(e["arguments"] == WEATHER_ARGS for e in events if e.get("name") == "get_weather")
    assert SECRET.encode() not in prefire.capture_bytes()


async def test_openai_sdk_stream_and_followup(proxied_env: RunningProxy) -> None:
    calls = await weather_conversation(SECRET)
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    events = proxied_env.events()
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["tools", "user_message", "llm_request"]
    calls_ev = [e for e in events if e["kind"] == "tool_call"]
    assert [(e["call_id"], e["name"], e["arguments"]) for e in calls_ev[:2]] == [
        ("call_a", "get_weather", WEATHER_ARGS),
        ("call_b", "get_time", TIME_ARGS),
    ]
    results = [e for e in events if e["kind"] == "tool_result"]
    assert [(r["call_id"], r["name"], r["content"]) for r in results] == [
        ("call_a", "get_weather", {"temp_c": 21}),
        ("call_b", "get_time", "14:05"),
    ]
    # the follow-up continues the same conversation, and the calls are not announced twice
    assert len({e["session"] for e in events}) == 1
    assert [e["call_id"] for e in calls_ev].count("call_a") == 1
    assert SECRET.encode() not in proxied_env.capture_bytes()


async def test_anthropic_sdk_stream(proxied_env: RunningProxy) -> None:
    up = LLMUpstream()
    async with serve(up.app) as base:
        client = anthropic.AsyncAnthropic(base_url=base, api_key=SECRET)
        async with client.messages.stream(
            model="claude-scripted",
            max_tokens=200,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}],
        ) as stream:
            final = await stream.get_final_message()
        await client.close()
    tool_uses = [b for b in final.content if b.type == "tool_use"]
    assert tool_uses[0].input == WEATHER_ARGS
    calls = [e for e in proxied_env.events() if e["kind"] == "tool_call"]
    assert [(e["call_id"], e["name"], e["arguments"], e["api"]) for e in calls] == [
        ("toolu_1", "get_weather", WEATHER_ARGS, "anthropic")
    ]


async def test_openai_responses_sdk_stream(proxied_env: RunningProxy) -> None:
    up = LLMUpstream()
    async with serve(up.app) as base:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=SECRET)
        stream = await client.responses.create(model="gpt-4o-mini", input="Weather?", stream=True)
        done = [ev async for ev in stream if ev.type == "response.function_call_arguments.done"]
        await client.close()
    assert json.loads(done[0].arguments) == WEATHER_ARGS
    calls = [e for e in proxied_env.events() if e["kind"] == "tool_call"]
    assert [(e["call_id"], e["name"], e["api"]) for e in calls] == [
        ("call_r1", "get_weather", "openai_responses")
    ]


async def test_tls_upstream_through_prefire_ca(proxied_env: RunningProxy, self_signed) -> None:
    up = LLMUpstream()
    async with serve(up.app, ssl_context=self_signed) as base:
        assert base.startswith("https://localhost:")
        # The client trusts only what SSL_CERT_FILE says: the system roots plus prefire's CA.
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=SECRET)
        resp = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        await client.close()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(trust_env=False) as direct:  # no prefire CA, no proxy
                await direct.post(base + "/v1/chat/completions", json={})
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert any(e["kind"] == "tool_call" for e in proxied_env.events())


async def test_capture_holds_redacted_flows_with_stream_bodies(tmp_path: Path) -> None:
    proxy = await start_proxy(tmp_path)
    up = LLMUpstream(gap_s=0.02)
    async with serve(up.app) as base, httpx.AsyncClient(proxy=proxy.url, trust_env=False) as via:
        _, _, body, _ = await _fetch(via, base + ROUTES[1][0], ROUTES[1][1])
        await via.post(base + "/v1beta/models/g:generateContent?key=" + SECRET, json=ROUTES[4][1])
    assert await stop_proxy(proxy) == 0
    (mitm_file,) = proxy.capture_dir.glob("flows-*.mitm")
    with mitm_file.open("rb") as fh:
        flows = list(mitm_io.FlowReader(fh).stream())
    assert len(flows) == 2
    assert flows[0].response.raw_content == body
    chunks = flows[0].metadata["prefire.chunks"]
    assert len(chunks) > 1 and sum(size for _, size in chunks) == len(body)
    assert flows[0].request.headers["authorization"] == "REDACTED"
    assert "key=REDACTED" in flows[1].request.url
    assert SECRET.encode() not in proxy.capture_bytes()


async def test_run_wraps_a_command_and_returns_its_status(tmp_path: Path) -> None:
    code = (
        "import os, sys; p = os.environ['HTTPS_PROXY']; ca = os.environ['SSL_CERT_FILE'];"
        "sys.exit(3 if p.startswith('http://127.0.0.1:') and os.path.exists(ca) else 9)"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prefire.cli.main",
        "run",
        "--listen-port",
        "0",
        "--state-dir",
        str(tmp_path / "s"),
        "--",
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3
    assert out.decode().splitlines()[0].startswith("prefire listening on http://127.0.0.1:")


async def test_env_prints_exports_and_ca_key_is_private(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "prefire.cli.main",
        "env",
        "--state-dir",
        str(tmp_path / "s"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    lines = dict(line.removeprefix("export ").split("=", 1) for line in out.decode().splitlines())
    assert lines["HTTPS_PROXY"] == lines["HTTP_PROXY"] == "http://127.0.0.1:8080"
    assert lines["NODE_USE_ENV_PROXY"] == "1"
    for key in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert Path(lines[key]).exists()
    key_file = tmp_path / "s" / "mitmproxy" / "mitmproxy-ca.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_non_loopback_listen_needs_proxy_auth(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "prefire.cli.main", "run", "--listen-host", "0.0.0.0",
        "--listen-port", "0", "--state-dir", str(tmp_path / "s"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "--proxy-auth" in err.decode()


async def test_proxy_auth_is_required_when_set(tmp_path: Path) -> None:
    proxy = await start_proxy(tmp_path, "--proxy-auth", "agent:s3cret")
    up = LLMUpstream()
    try:
        async with serve(up.app) as base:
            async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as anonymous:
                denied = await anonymous.post(base + ROUTES[0][0], json=ROUTES[0][1])
            authed_url = proxy.url.replace("http://", "http://agent:s3cret@")
            async with httpx.AsyncClient(proxy=authed_url, trust_env=False) as client:
                allowed = await client.post(base + ROUTES[0][0], json=ROUTES[0][1])
    finally:
        assert await stop_proxy(proxy) == 0
    assert denied.status_code == 407
    assert allowed.status_code == 200 and allowed.json()["id"] == "chatcmpl-1"


async def test_reverse_mode_base_url_for_clients_that_ignore_proxies(tmp_path: Path) -> None:
    """The fallback of DESIGN.md: OPENAI_BASE_URL at prefire in reverse mode."""
    up = LLMUpstream(gap_s=0.01)
    async with serve(up.app) as base, httpx.AsyncClient(trust_env=False) as direct:
        proxy = await start_proxy(tmp_path, "--mode", f"reverse:{base}")
        try:
            path, body = ROUTES[1]
            want = await _fetch(direct, base + path, body)
            got = await _fetch(direct, proxy.url + path, body)
            client = openai.AsyncOpenAI(
                base_url=proxy.url + "/v1",
                api_key=SECRET,
                http_client=httpx.AsyncClient(trust_env=False),
            )
            resp = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Weather in Paris?"}]
            )
            await client.close()
        finally:
            assert await stop_proxy(proxy) == 0
    assert got[:3] == want[:3]
    assert resp.choices[0].message.tool_calls[0].function.name == "get_weather"
    calls = [e for e in proxy.events() if e["kind"] == "tool_call"]
    # the streamed response's two calls, then the SDK's one: seen through reverse mode
    assert [e["name"] for e in calls] == ["get_weather", "get_time", "get_weather"]
