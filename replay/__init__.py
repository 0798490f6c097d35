"""Replay of captured and imported sessions (offline simulation, live playback, importers)."""
