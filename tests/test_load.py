"""A short loopback load test through prefire (bench/proxy_overhead.py --load, small):
concurrent agents, streams and MCP calls; zero errors, zero mismatched answers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "proxy_overhead.py"


async def test_load_through_prefire_has_no_errors_and_no_mismatches() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH), "--load", "--targets", "prefire", "--agents", "8",
        "--load-seconds", "2", "--rounds", "1", "--json",
        "--prefire", str(Path(sys.executable).parent / "prefire"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    row = json.loads(out)["load"]["prefire"]
    assert row["errors"] == 0 and row["mismatched"] == 0, row
    assert row["requests"] > 100, row
