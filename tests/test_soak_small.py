"""A short soak (bench/soak.py in-process, 1,500 sessions): per-exchange state is
released, and the bounded tables stay within their bounds."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("prefire_bench_soak", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_short_soak_leaves_nothing_behind() -> None:
    soak = load_soak()
    args = argparse.Namespace(sessions=1500, tenants=5, apps=4, seed=3, every=500)
    result = await soak.in_process(args, check=True)
    assert result["exchanges"] == 4500
    assert result["open_exchanges"] == 0
    assert result["rss_mb"][-1]["rss_mb"] < 1000
