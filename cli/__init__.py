"""The `prefire` command line: argument parsing, dispatching to proxy/ and replay/."""
