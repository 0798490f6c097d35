"""The tool-safety policy: which tools may run early, for how long a result stays fresh,
what a call invalidates; the rules file and REST request templates. Pure: no I/O loop."""
