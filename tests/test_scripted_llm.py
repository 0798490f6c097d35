"""The scripted model the agent tests use, read by the real openai and anthropic SDKs: the
same chain over Chat Completions, Responses (streaming, non-streaming, previous_response_id)
and Anthropic Messages; tool names as the client shows them; results as clients wrap them."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from bench.agents.tasks import SCRIPT, make_tasks
from bench.agents.world import World
from prefire.proxy.demo.scripted_llm import ScriptedLLM, read_anthropic, server_name, structured
from prefire.proxy.demo.tools import serve_app

THINK = (0.01, 0.02)
PROMPT = make_tasks(1, 3, ("owners",))[0]["prompt"]
WORLD = World(1)


def test_structured_unwraps_what_clients_show() -> None:
    hit = {"hits": [{"doc_id": "doc-a"}]}
    text = json.dumps(hit)
    assert structured(text) == hit
    assert structured([{"type": "text", "text": text}]) == hit
    assert structured({"type": "text", "text": text, "annotations": None}) == hit
    codex = "Wall time: 1.0083 seconds\nOutput:\n" + json.dumps({"result": text})
    assert structured(codex) == hit
    assert structured("Error executing tool: no such doc") == "Error executing tool: no such doc"


def test_server_name_strips_client_prefixes() -> None:
    assert server_name("mcp__docs__search_docs") == "search_docs"
    assert server_name("docs.get_doc") == "get_doc"
    assert server_name("get_team") == "get_team"


def _run_tool(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps(WORLD.call(server_name(name), arguments))


async def test_chat_chain_streaming_and_not() -> None:
    tools = [
        {"type": "function", "function": {"name": f"docs__{t}", "parameters": {"type": "object"}}}
        for t in ("search_docs", "get_doc", "get_team")
    ]
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    async with serve_app(llm.app) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x")
        for stream in (False, True):
            messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
            names = []
            for _ in range(4):
                if stream:
                    calls: dict[int, dict[str, Any]] = {}
                    text = ""
                    async for chunk in await client.chat.completions.create(
                        model="m", messages=messages, tools=tools, stream=True
                    ):
                        delta = chunk.choices[0].delta
                        text += delta.content or ""
                        for c in delta.tool_calls or []:
                            slot = calls.setdefault(c.index, {"id": c.id, "name": "", "args": ""})
                            slot["name"] += c.function.name or ""
                            slot["args"] += c.function.arguments or ""
                    got = list(calls.values())
                else:
                    resp = await client.chat.completions.create(
                        model="m", messages=messages, tools=tools
                    )
                    msg = resp.choices[0].message
                    text = msg.content or ""
                    got = [
                        {"id": c.id, "name": c.function.name, "args": c.function.arguments}
                        for c in msg.tool_calls or []
                    ]
                if not got:
                    break
                names.append(sorted({c["name"] for c in got}))
                messages.append(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": c["id"],
                                "type": "function",
                                "function": {"name": c["name"], "arguments": c["args"]},
                            }
                            for c in got
                        ],
                    }
                )
                messages += [
                    {
                        "role": "tool",
                        "tool_call_id": c["id"],
                        "content": _run_tool(c["name"], json.loads(c["args"])),
                    }
                    for c in got
                ]
            assert names == [["docs__search_docs"], ["docs__get_doc"], ["docs__get_team"]]
            assert "is owned by" in text


async def test_responses_chain_with_namespace_and_previous_response_id() -> None:
    namespace = {
        "type": "namespace",
        "name": "mcp__docs",
        "tools": [{"type": "function", "name": t} for t in ("search_docs", "get_doc", "get_team")],
    }
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    async with serve_app(llm.app) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x")
        previous: str | None = None
        given: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        seen = []
        for turn in range(4):
            body = {"model": "m", "input": given, "tools": [namespace]}
            if previous:
                body["previous_response_id"] = previous
            if turn % 2:  # streamed every other turn
                events = [e async for e in await client.responses.create(**body, stream=True)]
                kinds = [e.type for e in events]
                assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
                response = events[-1].response
            else:
                response = await client.responses.create(**body)
            calls = [i for i in response.output if i.type == "function_call"]
            if not calls:
                assert "is owned by" in response.output_text
                break
            seen.append(sorted({(c.name, c.model_dump().get("namespace")) for c in calls}))
            previous = response.id
            given = [  # only the new items: the rest is in the previous response
                {
                    "type": "function_call_output",
                    "call_id": c.call_id,
                    "output": "Wall time: 0.1 seconds\nOutput:\n"
                    + json.dumps({"result": _run_tool(c.name, json.loads(c.arguments))}),
                }
                for c in calls
            ]
        assert seen == [
            [("search_docs", "mcp__docs")],
            [("get_doc", "mcp__docs")],
            [("get_team", "mcp__docs")],
        ]


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_chain_with_prefixed_names(stream: bool) -> None:
    tools = [
        {"name": f"mcp__docs__{t}", "input_schema": {"type": "object"}}
        for t in ("search_docs", "get_doc", "get_team")
    ]
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    async with serve_app(llm.app) as url:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="x")
        reminder = {"type": "text", "text": "<system-reminder>cwd: /tmp</system-reminder>"}
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [reminder, {"type": "text", "text": PROMPT}]}
        ]
        names = []
        for _ in range(4):
            args = {"model": "m", "max_tokens": 100, "messages": messages, "tools": tools}
            if stream:
                async with client.messages.stream(**args) as s:
                    message = await s.get_final_message()
            else:
                message = await client.messages.create(**args)
            uses = [b for b in message.content if b.type == "tool_use"]
            if not uses:
                assert "is owned by" in message.content[0].text
                break
            names.append(sorted({u.name for u in uses}))
            messages.append({"role": "assistant", "content": [u.model_dump() for u in uses]})
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": u.id,
                    "content": [{"type": "text", "text": _run_tool(u.name, u.input)}],
                }
                for u in uses
            ]
            messages.append({"role": "user", "content": results})
        assert names == [
            ["mcp__docs__search_docs"],
            ["mcp__docs__get_doc"],
            ["mcp__docs__get_team"],
        ]
        # a side request offering no tools (a title, say) gets text, not a tool call
        side = await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": PROMPT}]
        )
        assert [b.type for b in side.content] == ["text"]


def test_codex_two_part_output_is_unwrapped() -> None:
    hit = {"hits": [{"doc_id": "doc-a"}]}
    output = [  # Codex 0.171's function_call_output.output for an MCP tool
        {"type": "input_text", "text": "Wall time: 1.0093 seconds\nOutput:"},
        {"type": "input_text", "text": json.dumps(hit, indent=2)},
    ]
    assert structured(output) == hit


def test_claude_code_deferred_tools_are_loaded_first() -> None:
    """Claude Code's deferred tools (ToolSearch): only named in the prompt's text until the
    model selects them; the ToolSearch turn is not a step of the task."""
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    listed = "deferred tools:\nWebFetch\nmcp__docs__get_doc\nmcp__docs__search_docs\n"
    loader = {"name": "ToolSearch", "input_schema": {"type": "object"}}
    ask = {"role": "user", "content": [{"type": "text", "text": PROMPT}]}
    body: dict[str, Any] = {"system": listed, "tools": [loader], "messages": [ask]}
    first = llm.reply(read_anthropic(body), "OK.")
    assert first.calls == [("ToolSearch", None, {"query": "select:mcp__docs__search_docs"})]
    use = {"type": "tool_use", "id": "t0", "name": "ToolSearch", "input": first.calls[0][2]}
    loaded = {
        "type": "tool_result",
        "tool_use_id": "t0",
        "content": [{"type": "tool_reference", "tool_name": "mcp__docs__search_docs"}],
    }
    deferred = [
        {"name": f"mcp__docs__{t}", "defer_loading": True, "input_schema": {"type": "object"}}
        for t in ("search_docs", "get_doc")
    ]
    body["tools"] = [loader, *deferred]
    body["messages"] += [
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [loaded]},
    ]
    second = llm.reply(read_anthropic(body), "OK.")
    assert [(n, a) for n, _, a in second.calls] == [
        ("mcp__docs__search_docs", llm.replies[0][2][0][1])  # the task's first call
    ]


def test_results_are_read_in_call_order() -> None:
    """Claude Code sends a turn's results in the order they finished: timing, which must
    not change what the model answers."""
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    tools = [
        {"name": f"mcp__docs__{t}", "input_schema": {"type": "object"}}
        for t in ("search_docs", "get_doc", "get_team")
    ]
    answers = set()
    for finishing_order in (1, -1):
        messages: list[dict[str, Any]] = [{"role": "user", "content": PROMPT}]
        for _ in range(4):
            reply = llm.reply(read_anthropic({"tools": tools, "messages": messages}), "OK.")
            if reply.text is not None:
                answers.add(reply.text)
                break
            uses = [
                {"type": "tool_use", "id": f"u{len(messages)}-{k}", "name": n, "input": a}
                for k, (n, _, a) in enumerate(reply.calls)
            ]
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": u["id"],
                    "content": _run_tool(u["name"], u["input"]),
                }
                for u in uses
            ][::finishing_order]
            messages += [
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ]
    assert len(answers) == 1 and "is owned by" in answers.pop()


async def _post(url: str, body: dict[str, Any]) -> Any:
    """POST JSON; the JSON reply, or the JSON objects of an SSE reply's data lines."""
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        if resp.content_type != "text/event-stream":
            return await resp.json()
        text = await resp.text()
        return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


async def test_anthropic_message_thread_holds_the_conversation() -> None:
    """anthropic 2.x's tool runner: `thread: create`, then each turn `continue`s from the
    previous reply with only its new messages (no system prompt, no tools)."""
    tools = [{"name": t, "input_schema": {"type": "object"}} for t in ("search_docs", "get_doc")]
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    async with serve_app(llm.app) as url:
        body: dict[str, Any] = {"model": "m", "max_tokens": 9, "tools": tools}
        body |= {"messages": [{"role": "user", "content": PROMPT}], "thread": {"type": "create"}}
        names = []
        for _ in range(2):
            reply = await _post(url + "/v1/messages", body)
            uses = [b for b in reply["content"] if b["type"] == "tool_use"]
            names.append(sorted({u["name"] for u in uses}))
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": u["id"],
                    "content": _run_tool(u["name"], u["input"]),
                }
                for u in uses
            ]
            thread = {"type": "continue", "previous_message_id": reply["id"]}
            body = {"model": "m", "max_tokens": 9, "thread": thread}
            body["messages"] = [{"role": "user", "content": results}]
        assert names == [["search_docs"], ["get_doc"]]
        assert llm.requests == {"messages whole": 1, "messages whole thread": 1}


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_chain_streaming_and_not(stream: bool) -> None:
    """generateContent / streamGenerateContent?alt=sse: function calls without ids, answered
    by name; a streamed model turn kept as one content per chunk is still one turn; a result
    shown as the MCP CallToolResult it is (google-genai) is read."""
    names = ("search_docs", "get_doc", "get_team")
    tools = [{"functionDeclarations": [{"name": t, "parameters": {}} for t in names]}]
    llm = ScriptedLLM(SCRIPT, 1, THINK)
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    async with serve_app(llm.app) as url:
        contents: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": PROMPT}]}]
        seen = []
        for _ in range(4):
            reply = await _post(
                f"{url}/v1beta/models/gemini-3:{action}", {"contents": contents, "tools": tools}
            )
            chunks = reply if stream else [reply]
            parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
            assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
            calls = [p["functionCall"] for p in parts if "functionCall" in p]
            if not calls:
                assert "is owned by" in "".join(p["text"] for p in parts)
                break
            seen.append(sorted({c["name"] for c in calls}))
            contents += [{"role": "model", "parts": [{"functionCall": c}]} for c in calls]
            mcp_result = {"content": [{"type": "text", "text": ""}], "is_error": False}
            contents.append(
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": c["name"],
                                "response": {
                                    "result": {
                                        **mcp_result,
                                        "content": [
                                            {
                                                "type": "text",
                                                "text": _run_tool(c["name"], c["args"]),
                                            }
                                        ],
                                    }
                                },
                            }
                        }
                        for c in calls
                    ],
                }
            )
        assert seen == [["search_docs"], ["get_doc"], ["get_team"]]
        assert llm.requests == {f"gemini {'streamed' if stream else 'whole'}": 4}
