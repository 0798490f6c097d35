"""The state directory: mitmproxy's confdir (so the CA persists) and prefire's own files."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import certifi
from mitmproxy import certs

CA_BASENAME = "mitmproxy"
# Bodies above this are streamed through without being buffered, parsed or learned from.
DEFAULT_MAX_BODY = 8 << 20
# Proxy and trust settings a child process must not inherit from the caller's shell:
# they would send its traffic somewhere else, or trust something else.
PROXY_ENV_KEYS = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "https_proxy",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)


def default_state_dir() -> Path:
    env = os.environ.get("PREFIRE_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "prefire"


class StateError(Exception):
    """The state directory cannot be used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    @property
    def confdir(self) -> Path:
        return self.root / "mitmproxy"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate alone (what NODE_EXTRA_CA_CERTS wants)."""
        return self.confdir / f"{CA_BASENAME}-ca-cert.pem"

    @property
    def ca_bundle(self) -> Path:
        """System roots plus prefire's CA: SSL_CERT_FILE replaces the trust store,
        so traffic that bypasses the proxy must still verify."""
        return self.root / "ca-bundle.pem"

    def ensure(self) -> None:
        """Create the directory, the CA (once; it persists) and the CA bundle. Keys are 0600."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        try:
            certs.CertStore.from_store(self.confdir, CA_BASENAME, 2048)
        except (ValueError, OSError) as exc:
            raise StateError(
                f"the CA in {self.confdir} cannot be read ({_first_line(exc)}). "
                "prefire does not replace a CA by itself: clients trust it. Restore it, or "
                f"move {self.confdir} aside to make a new one (and trust the new one)."
            ) from None
        for key_file in self.confdir.glob(f"{CA_BASENAME}-ca*.pem"):
            if key_file.name != self.ca_cert.name:
                os.chmod(key_file, 0o600)
        for key_file in self.confdir.glob(f"{CA_BASENAME}-ca*.p12"):
            os.chmod(key_file, 0o600)
        ca = self.ca_cert.read_bytes()
        if not self.ca_bundle.exists() or not self.ca_bundle.read_bytes().endswith(ca):
            self.ca_bundle.write_bytes(_system_roots() + b"\n" + ca)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash or a full disk leaves either the old
    file or the new one, never a mix: a temporary file, fsync, rename, fsync the dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _system_roots() -> bytes:
    return Path(certifi.where()).read_bytes()


def proxy_env(host: str, port: int, state: StateDir) -> dict[str, str]:
    """The environment an agent needs to go through the proxy and trust its CA."""
    url = f"http://{url_host(host)}:{port}"
    return {
        "HTTPS_PROXY": url,
        "HTTP_PROXY": url,
        "https_proxy": url,
        "http_proxy": url,
        "SSL_CERT_FILE": str(state.ca_bundle),
        "REQUESTS_CA_BUNDLE": str(state.ca_bundle),
        "NODE_EXTRA_CA_CERTS": str(state.ca_cert),
        "NODE_USE_ENV_PROXY": "1",
    }


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
