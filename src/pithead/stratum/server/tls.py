"""TLS for the pool's Stratum endpoint (`stratum+ssl://`): the server's `SSLContext` from a certificate and
key file.

What it is: `server_context(cert_file, key_file)` loads a PEM certificate chain and its private key into a
server context with the library's secure defaults (TLS 1.2 or later, no compression). The pool and a farm
proxy's machine-facing endpoint get it from their config (`[pool] tls_cert_file`/`tls_key_file`, `[proxy]`
the same) and hand it to `PoolServer(ssl=...)`. What it is not: certificate management (issue and renew
the files with your usual tools) or client authentication.
"""

from __future__ import annotations

import ssl

MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2
"""TLS 1.0/1.1 are deprecated (RFC 8996); every firmware that speaks stratum+ssl at all speaks 1.2."""


class TlsError(ValueError):
    """A certificate or key that cannot be used; the message says which file and why."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for `cert_file` (PEM, the chain) and `key_file` (PEM, unencrypted)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_TLS_VERSION
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TlsError(f"no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"cannot use certificate {cert_file} with key {key_file}: {exc}") from None
    return ctx
