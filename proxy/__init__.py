"""Everything in prefire that does I/O: the embedded mitmproxy, its addon, codecs, capture."""
