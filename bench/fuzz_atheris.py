"""Coverage-guided fuzzing of the codecs, the SSE splitter and the observer with atheris
(libFuzzer). Optional: `pip install atheris` (or the `fuzz` extra).

    python bench/fuzz_atheris.py -runs=200000          # a fixed number of inputs
    python bench/fuzz_atheris.py -max_total_time=120   # or a time budget

The input bytes choose an API path, a content type, how the stream is cut, and the
request and response bodies; any exception escaping the observer or a codec is a crash
(libFuzzer saves the input as crash-*). Seeds are the wire samples of tests/fuzzing.py.
libFuzzer's last line on stderr says how many inputs ran: "Done N runs in S second(s)".
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with atheris.instrument_imports(include=["prefire"]):
    from prefire.wire.providers import mcp
    from prefire.wire.providers.sse import SSESplitter
    from tests import fuzzing as fz


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    path = fz.PATHS[fdp.ConsumeIntInRange(0, len(fz.PATHS) - 1)]
    ctype = fz.CONTENT_TYPES[fdp.ConsumeIntInRange(0, len(fz.CONTENT_TYPES) - 1)]
    status = (200, 200, 200, 400, 500)[fdp.ConsumeIntInRange(0, 4)]
    streamed = fdp.ConsumeBool()
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    request = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 8192))
    response = fdp.ConsumeBytes(fdp.remaining_bytes())
    chunks = fz.split_at(response, [c for c in cuts if c <= len(response)])
    fz.check_observer(path, request, status, ctype, chunks, streamed)
    fz.check_sse(response, chunks)
    mcp.parse_response(response, ctype)
    splitter = SSESplitter()
    for chunk in chunks:
        splitter.feed(chunk)


def seeds(directory: str) -> None:
    samples = [*fz.REQUEST_BODIES, *fz.STREAMS, *fz.WHOLE_BODIES]
    for n, body in enumerate(samples):
        with open(os.path.join(directory, f"seed-{n}"), "wb") as fh:
            # path, content type, status, streamed, no cuts, request length, then bodies
            fh.write(bytes([n % 7, n % 7, 0, 1, 0]) + body)


if __name__ == "__main__":
    corpus = tempfile.mkdtemp(prefix="prefire-atheris-")
    seeds(corpus)
    atheris.Setup([sys.argv[0], *sys.argv[1:], corpus], one_input)
    atheris.Fuzz()
