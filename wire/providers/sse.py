"""Server-sent events splitter (sans-I/O).

Chunk boundaries from the network are arbitrary: a line, a field, even a
CRLF pair may be cut anywhere, so the splitter keeps its own buffer.
Follows the WHATWG event-stream parsing rules for the fields we need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str = ""


class SSESplitter:
    def __init__(self) -> None:
        self._buf = bytearray()
        # Bytes of _buf already scanned for line ends: a long line fed in small
        # chunks must not be rescanned from its start every time.
        self._scanned = 0
        self._pending_cr = False
        self._event = ""
        self._data: list[str] = []
        self._id = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = False
        self._buf += chunk
        start = 0
        for m in _EOL.finditer(self._buf, self._scanned):
            self._line(bytes(self._buf[start : m.start()]), out)
            start = m.end()
        if start and self._buf[start - 1] == 0x0D:
            # A CR at the very end may be the first half of a CRLF split across chunks.
            self._pending_cr = start == len(self._buf)
        del self._buf[:start]
        self._scanned = len(self._buf)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: an unterminated final event is dropped, as the spec says."""
        self._buf.clear()
        self._scanned = 0
        self._data = []
        self._event = ""
        return []

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        line = raw.decode("utf-8", "replace")
        if not line:
            if self._data:
                out.append(SSEEvent(self._event or "message", "\n".join(self._data), self._id))
            self._data = []
            self._event = ""
            return
        if line.startswith(":"):
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
