"""Live playback's pure parts: the matching key, answering under another JSON-RPC id, and
reading a damaged `.mitm` file."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import orjson
from mitmproxy import io as mitm_io
from mitmproxy.test import tflow

from prefire.replay.errors import InputError
from prefire.replay.playback import _with_id
from prefire.replay.recorded import Recorded, authority, playback_key, read_file


def key(body: bytes, path: str = "/mcp", method: str = "POST") -> bytes:
    return playback_key("http", method, "127.0.0.1", 8000, path, body)


def test_key_is_canonical_json_and_ignores_the_jsonrpc_id_and_meta() -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t"}}
    other_id = {**call, "id": "prefire-ab-1", "params": {"name": "t", "_meta": {"p": 1}}}
    assert key(orjson.dumps(call)) == key(orjson.dumps(other_id))
    assert key(b'{"a": 1, "b": 2}') == key(b'{"b":2,"a":1}')
    assert key(orjson.dumps({**call, "params": {"name": "u"}})) != key(orjson.dumps(call))
    # method, path, query (in order) and host count, as in mitmproxy's server playback
    assert key(b"", "/x?a=1&b=2", "GET") != key(b"", "/x?b=2&a=1", "GET")
    assert key(b"", "/x", "GET") != key(b"", "/x", "DELETE")
    assert playback_key("https", "GET", "a", 443, "/", b"") != playback_key(
        "https", "GET", "b", 443, "/", b""
    )


def test_authority_defaults_the_port_by_scheme() -> None:
    assert authority("api.example.com", "https") == ("api.example.com", 443)
    assert authority("127.0.0.1:8080", "http") == ("127.0.0.1", 8080)
    assert authority("[::1]:9", "http") == ("::1", 9)


def _recorded_sse(rid: object, chunks: list[bytes]) -> Recorded:
    body = b"".join(chunks)
    return Recorded(
        file="f",
        number=1,
        flow_id="x",
        method="POST",
        url="http://h/mcp",
        scheme="http",
        host="h",
        port=80,
        path="/mcp",
        headers=[],
        body=b"",
        content=b"",
        key=b"",
        t_start=0.0,
        t_sent=0.0,
        status=200,
        response_headers=[("content-type", "text/event-stream")],
        response_body=body,
        chunks=[(0.1 * i, len(c)) for i, c in enumerate(chunks)],
        jsonrpc_id=rid,
    )


def test_answer_under_another_id_swaps_back_to_the_recorded_bytes() -> None:
    chunks = [
        b'event: message\r\ndata: {"jsonrpc":"2.0","id":3,',
        b'"result":{"content":[{"type":"text","text":"{\\"id\\": 3}"}]}}\r\n\r\n',
    ]
    rec = _recorded_sse(3, chunks)
    body, new_chunks, decoded = _with_id(rec, "prefire-ab-1")
    assert not decoded
    assert b'"id":"prefire-ab-1"' in body and body.count(b"prefire-ab-1") == 1
    assert new_chunks is not None and sum(n for _, n in new_chunks) == len(body)
    # what the speculator does with its own id: the agent gets the recorded bytes
    assert body.replace(orjson.dumps("prefire-ab-1"), orjson.dumps(3)) == rec.response_body


def _mitm_file(n: int) -> bytes:
    buf = BytesIO()
    writer = mitm_io.FlowWriter(buf)
    for i in range(n):
        f = tflow.tflow(resp=True)
        f.request.path = f"/step/{i}"
        writer.add(f)
    return buf.getvalue()


def test_a_damaged_record_is_named_and_reading_resumes(tmp_path: Path) -> None:
    data = _mitm_file(4)
    second = data.index(b"}", data.index(b"4:type;4:http;7:version;")) + 1  # record 2 starts
    path = tmp_path / "damaged.mitm"
    path.write_bytes(data[:second] + b"zz" + data[second + 2 :])  # its length prefix
    items = list(read_file(path))
    errors = [i for i in items if isinstance(i, InputError)]
    paths = [i.path for i in items if isinstance(i, Recorded)]
    assert paths == ["/step/0", "/step/2", "/step/3"]
    assert len(errors) == 1 and errors[0].line == 2
    assert "flow 2 (id " in errors[0].message and "length prefix" in errors[0].message


def test_a_file_cut_short_keeps_the_whole_records(tmp_path: Path) -> None:
    data = _mitm_file(3)
    path = tmp_path / "cut.mitm"
    path.write_bytes(data[:-40])
    items = list(read_file(path))
    assert [i.path for i in items if isinstance(i, Recorded)] == ["/step/0", "/step/1"]
    (error,) = [i for i in items if isinstance(i, InputError)]
    assert "flow 3" in error.message and "the file ends inside it" in error.message
