"""Streamed bodies are observed decoded, whatever the Content-Encoding and chunking."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from prefire.proxy.decoding import chunk_decoder

BODY = b"data: " + b'{"choices":[{"delta":{"content":"hello"}}]}\n\n' * 200

ENCODED = {
    "gzip": gzip.compress(BODY),
    "x-gzip": gzip.compress(BODY),
    "deflate": zlib.compress(BODY),
    "br": brotli.compress(BODY),
    "zstd": zstandard.ZstdCompressor().compress(BODY),
    "identity": BODY,
    "": BODY,
}


@pytest.mark.parametrize("encoding", sorted(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 512, 1 << 20])
def test_every_encoding_decodes_in_pieces(encoding: str, size: int) -> None:
    data = ENCODED[encoding]
    dec = chunk_decoder(encoding)
    assert dec is not None
    out = b"".join(dec.decode(data[i : i + size]) for i in range(0, len(data), size))
    assert out == BODY


def test_unknown_encoding_is_not_observed() -> None:
    assert chunk_decoder("compress") is None
    assert chunk_decoder("gzip, br") is None
