"""The sans-I/O wire layer: provider codecs, the observer (bytes in, events out), body
decoding, conversation linking and credential scopes. No mitmproxy, no asyncio."""
