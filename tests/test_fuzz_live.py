"""Fuzzed exchanges of every supported format through a live prefire: the agent gets what
it gets without prefire, byte for byte, and the proxy keeps serving and capturing."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from tests import live_fuzz
from tests.conftest import start_proxy, stop_proxy
from tests.fuzzing import live_cases
from tests.upstreams import serve

CASES = int(os.environ.get("PREFIRE_LIVE_FUZZ_CASES", "150"))


async def test_fuzzed_exchanges_pass_through_byte_identical(tmp_path: Path) -> None:
    cases = live_cases(CASES, seed=7)
    proxy = await start_proxy(tmp_path, "--max-body", "256k")
    up = live_fuzz.FuzzUpstream(cases)
    try:
        async with serve(up.app) as base:
            tally = await live_fuzz.run(proxy.url, base, up, cases)
    finally:
        assert await stop_proxy(proxy) == 0
    assert tally.cases == CASES
    assert tally.mismatched == [] and tally.errors == [] and tally.request_changed == []
    assert tally.bytes_compared > 0
    # what was captured is whole and readable
    assert len(proxy.flows()) == CASES
    for path in proxy.capture_dir.glob("events-*.jsonl"):
        assert all(orjson.loads(line) for line in path.read_bytes().splitlines())
