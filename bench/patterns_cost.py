"""Cost of the pattern model: prediction latency with many sessions learned, snapshot
size and load time, simulated tool calls per second, and peak memory.

    python bench/patterns_cost.py [--sessions 10000] [--workload FILE.jsonl ...] [--probe FILE]

Synthetic sessions come from several applications whose tools pass values from
results and user text into later calls; `--workload` adds real imported sessions
(see `python -m prefire.replay.importers`); `--probe FILE` times the predictions on
FILE's sessions instead of on fresh synthetic ones. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from pathlib import Path

from prefire.patterns import snapshot
from prefire.patterns.events import LLMRequest
from prefire.patterns.model import PatternModel
from prefire.replay.simulate import Simulation
from prefire.replay.sources import ReplaySession, openai_session, read

CITIES = ["Oslo", "Rome", "Paris", "Lima", "Kyiv", "Quito", "Accra", "Hanoi", "Perth", "Riga"]


def synthetic(n: int, apps: int = 20, seed: int = 7) -> list[ReplaySession]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        app = rnd.randrange(apps)
        names = [f"a{app}_{t}" for t in ("search", "get", "weather", "book", "list", "note")]
        # schemas as agents send them, so the cost includes reading them (schema priors)
        params = [
            {"to": {"type": "string"}},
            {"trip_id": {"type": "string", "description": "The trip's id"}},
            {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            {"trip_id": {"type": "string"}, "date": {"type": "string", "format": "date"}},
            {"limit": {"type": "integer", "default": 10}},
            {"text": {"type": "string"}},
        ]
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t,
                    "parameters": {"type": "object", "properties": p, "required": sorted(p)},
                },
            }
            for t, p in zip(names, params, strict=True)
        ]
        city = rnd.choice(CITIES)
        ids = [f"X{rnd.randrange(10**6)}" for _ in range(rnd.randint(2, 6))]
        msgs: list[dict] = [
            {"role": "user", "content": f"Find trips to {city} and check the first one"}
        ]

        def call(cid: str, name: str, args: dict, result: object, msgs: list[dict] = msgs) -> None:
            msgs.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ],
                }
            )
            msgs.append({"role": "tool", "tool_call_id": cid, "content": json.dumps(result)})

        call(
            "c1",
            names[0],
            {"to": city},
            {"trips": [{"id": x, "price": rnd.randrange(900)} for x in ids]},
        )
        call("c2", names[1], {"trip_id": ids[0]}, {"id": ids[0], "seats": rnd.randrange(9)})
        if rnd.random() < 0.7:
            call("c3", names[2], {"city": city.lower(), "unit": "c"}, {"t": rnd.randrange(30)})
        if rnd.random() < 0.3:
            call("c4", names[3], {"trip_id": ids[0]}, "booked")
        msgs.append({"role": "assistant", "content": "Done."})
        out.append(openai_session({"id": f"syn{i}", "tools": tools, "messages": msgs}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--workload", type=Path, nargs="*", default=[])
    ap.add_argument("--probe", type=Path, default=None)
    args = ap.parse_args()

    sessions = synthetic(args.sessions)
    for path in args.workload:
        sessions += [s for s in read([path]) if isinstance(s, ReplaySession)]

    sim = Simulation()
    started = time.perf_counter()
    sim.run(sessions)
    elapsed = time.perf_counter() - started
    calls = sim.totals.tool_calls
    model = sim.model
    assert isinstance(model, PatternModel)

    # prediction latency on fresh sessions against the model that learned everything above
    probe = (
        [s for s in read([args.probe]) if isinstance(s, ReplaySession)]
        if args.probe
        else synthetic(2000, seed=99)
    )
    # wall time, and this thread's CPU time: on a shared machine the wall time's tail is
    # set by the scheduler (a preempted predict waits a 4 ms tick), the CPU time's by the model
    latencies, cpu = [], []
    for s in probe:
        for e in s.events:
            model.observe(e)
            if isinstance(e, LLMRequest):
                t0, c0 = time.perf_counter(), time.thread_time()
                model.predict(e.session)
                latencies.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        model.end_session(s.events[0].session)
    latencies.sort()
    cpu.sort()

    data = snapshot.dump(model)
    t0 = time.perf_counter()
    snapshot.load(data)
    load_s = time.perf_counter() - t0

    figures = {
        "sessions_learned": len(sessions),
        "tool_calls": calls,
        "simulated_calls_per_s": round(calls / elapsed),
        "predict_p50_ms": round(statistics.median(latencies) * 1e3, 3),
        "predict_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 3),
        "predict_cpu_p99_ms": round(cpu[int(len(cpu) * 0.99)] * 1e3, 3),
        "snapshot_bytes": len(data),
        "snapshot_load_s": round(load_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "hit_rate": sim.totals.summary()["hit_rate"],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
