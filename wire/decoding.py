"""Bounded Content-Encoding decoders, so bodies can be observed without trusting their size.

mitmproxy decodes whole bodies (`get_content`) but not a stream chunk by chunk, and
it decodes without a limit: a few megabytes of gzip can inflate to gigabytes. These
decoders stop once more than a budget of bytes came out, so what is observed stays
within `--max-body`. The agent still receives the encoded bytes untouched.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard

# brotli and zstd cannot stop at an output size, so they are fed input in slices this
# long and the output is checked after each. A zstd RLE block turns 3 bytes into 128 KiB,
# so a slice inflates to 3 MiB at most; brotli packs a 16 MiB meta-block in a few bytes,
# so a pathological slice can give some tens of MiB (a 256 MiB bomb stops at 40). It
# costs about twice as much as 1 KiB slices (5 MB of JSON: br 36 ms instead of 17, zstd
# 14 instead of 5).
_SLICE = 64


class ChunkDecoder(Protocol):
    def decode(self, chunk: bytes, budget: int) -> bytes:
        """The decoded bytes of `chunk`; stops early once more than `budget` came out."""
        ...


class _Identity:
    def decode(self, chunk: bytes, budget: int) -> bytes:
        return chunk


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    def decode(self, chunk: bytes, budget: int) -> bytes:
        return self._d.decompress(chunk, max(1, budget + 1))


class _Sliced:
    """Feeds a decompressor without an output limit in slices, checking the output after each."""

    def __init__(self, process: object) -> None:
        self._process = process

    def decode(self, chunk: bytes, budget: int) -> bytes:
        out = bytearray()
        for i in range(0, len(chunk), _SLICE):
            out += self._process(chunk[i : i + _SLICE])  # type: ignore[operator]
            if len(out) > budget:
                break
        return bytes(out)


def chunk_decoder(content_encoding: str) -> ChunkDecoder | None:
    """A decoder for the header's encoding, or None for one we cannot decode."""
    enc = content_encoding.strip().lower()
    if enc in ("", "identity"):
        return _Identity()
    if enc in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if enc == "deflate":
        # Servers disagree on whether "deflate" carries a zlib header; 32+ detects it.
        return _Zlib(32 + zlib.MAX_WBITS)
    if enc == "br":
        return _Sliced(brotli.Decompressor().process)
    if enc == "zstd":
        return _Sliced(zstandard.ZstdDecompressor().decompressobj().decompress)
    return None


DECODE_ERRORS = (zlib.error, brotli.error, zstandard.ZstdError, ValueError, MemoryError)


def decode_body(data: bytes, content_encoding: str, limit: int) -> tuple[bytes | None, str]:
    """A whole body decoded, if it decodes to at most `limit` bytes: (body, "") or
    (None, why not)."""
    enc = content_encoding.strip().lower()
    candidates = [enc]
    if enc == "deflate":
        candidates.append("raw-deflate")  # some servers send deflate without its zlib header
    why = "unknown_encoding"
    for name in candidates:
        decoder = _Zlib(-zlib.MAX_WBITS) if name == "raw-deflate" else chunk_decoder(name)
        if decoder is None:
            continue
        try:
            out = decoder.decode(data, limit)
        except DECODE_ERRORS:
            why = "bad_encoding"
            continue
        if len(out) > limit:
            return None, "decoded_body_above_max_body"
        return out, ""
    return None, why
