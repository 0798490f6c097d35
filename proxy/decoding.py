"""Incremental Content-Encoding decoders, so streamed bodies can be observed as they pass.

mitmproxy decodes whole bodies (`get_content`) but not a stream chunk by
chunk; the agent still receives the encoded bytes untouched.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli
import zstandard


class ChunkDecoder(Protocol):
    def decode(self, chunk: bytes) -> bytes: ...


class _Identity:
    def decode(self, chunk: bytes) -> bytes:
        return chunk


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    def decode(self, chunk: bytes) -> bytes:
        return self._d.decompress(chunk)


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decode(self, chunk: bytes) -> bytes:
        return self._d.process(chunk)


class _Zstd:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()

    def decode(self, chunk: bytes) -> bytes:
        return self._d.decompress(chunk)


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
        return _Brotli()
    if enc == "zstd":
        return _Zstd()
    return None
