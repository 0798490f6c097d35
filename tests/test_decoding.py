"""Streamed bodies are observed decoded, whatever the Content-Encoding and chunking."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from prefire.wire.decoding import chunk_decoder, decode_body

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
    out = b"".join(dec.decode(data[i : i + size], 1 << 30) for i in range(0, len(data), size))
    assert out == BODY
    whole, why = decode_body(data, encoding, len(BODY))
    assert (whole, why) == (BODY, "")


BOMBS = {
    "gzip": lambda b: gzip.compress(b, 9),
    "deflate": lambda b: zlib.compress(b, 9),
    "br": lambda b: brotli.compress(b, quality=5),
    "zstd": zstandard.ZstdCompressor(level=1).compress,
}
# how far past its budget a decoder may go: zlib stops at the byte, brotli and zstd
# after one 64-byte slice of input (zstd: 3 MiB at most; a few brotli meta-blocks of
# 16 MiB each can fit in one slice)
OVERRUN = {"gzip": 1, "deflate": 1, "br": 64 << 20, "zstd": 3 << 20}


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_a_body_that_inflates_past_the_limit_is_not_decoded(encoding: str) -> None:
    bomb = BOMBS[encoding](bytes((256 if encoding == "br" else 64) << 20))
    assert len(bomb) < 1 << 20
    assert decode_body(bomb, encoding, 1 << 20) == (None, "decoded_body_above_max_body")
    # a stream decoder stops soon after its budget too, not 64 MiB or more later
    dec = chunk_decoder(encoding)
    assert dec is not None
    assert 1 << 20 < len(dec.decode(bomb, 1 << 20)) <= (1 << 20) + OVERRUN[encoding]


@pytest.mark.parametrize(
    ("encoding", "data", "why"),
    [
        ("gzip", BODY, "bad_encoding"),  # says gzip, is plain
        ("br", gzip.compress(BODY), "bad_encoding"),  # says br, is gzip
        ("zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 32, "bad_encoding"),
        ("compress", BODY, "unknown_encoding"),
        ("gzip, br", BODY, "unknown_encoding"),
    ],
)
def test_a_body_that_lies_about_its_encoding_is_not_decoded(
    encoding: str, data: bytes, why: str
) -> None:
    assert decode_body(data, encoding, 1 << 20) == (None, why)


def test_deflate_without_its_zlib_header_decodes() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = raw.compress(BODY) + raw.flush()
    assert decode_body(data, "deflate", 1 << 20) == (BODY, "")


def test_unknown_encoding_is_not_observed() -> None:
    assert chunk_decoder("compress") is None
    assert chunk_decoder("gzip, br") is None
