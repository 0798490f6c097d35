"""Default configuration shipped with prefire."""
