"""Pure, sans-I/O learning of tool-call patterns: events in, predictions out."""
