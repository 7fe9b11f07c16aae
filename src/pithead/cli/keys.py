"""`pithead keys`: the Stratum V2 pool's authority key.

    pithead keys new --out FILE     write a new authority secret key to FILE (mode 0600, never over an
                                    existing file) and print its public key
    pithead keys show FILE          print the public key of the secret key in FILE

The public key is printed in the spec's encoding (base58check of 01 00 ‖ x-only key), the form miners
and proxies pin (`stratum2+tcp://HOST:PORT/KEY`); the file holds the secret as SRI's configs write it
(base58check of its 32 bytes) on one line. The pool signs each connection's certificate with it, so it
is the one secret that makes a pool who it says it is: keep the file private and backed up.

What it is not: a certificate tool (the pool issues certificates itself, per connection) or a key store.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from pithead.stratum.v2 import cert, secp256k1
from pithead.stratum.v2.errors import KeyEncodingError

app = typer.Typer(help="The Stratum V2 pool's authority key.", add_completion=False, no_args_is_help=True)

SECRET_FILE_MODE = 0o600
"""Owner read/write only: whoever reads the secret can impersonate the pool to every miner."""

MAX_KEY_FILE = 4096
"""A key file is one ~50-character line; anything much longer is not a key file (refused unread)."""


@app.command()
def new(out: Path = typer.Option(..., "--out", "-o", help="Where to write the new secret key (must not exist).")
        ) -> None:
    """Make a new authority key: the secret goes to FILE, the public key is printed."""
    secret = secp256k1.new_secret()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        typer.echo(f"pithead keys: {out} exists; not overwriting a key", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"pithead keys: cannot create {out}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(cert.encode_secret_key(secret) + "\n")
    typer.echo(cert.encode_public_key(secp256k1.xonly_public(secret)))


@app.command()
def show(path: Path = typer.Argument(..., help="A secret key file written by `pithead keys new`.")) -> None:
    """Print the public key of the authority secret key in FILE."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        typer.echo(f"pithead keys: cannot read {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        if len(raw) > MAX_KEY_FILE:
            raise KeyEncodingError(f"more than {MAX_KEY_FILE} bytes")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise KeyEncodingError("not ASCII text") from None
        secret = cert.decode_secret_key(text)
    except KeyEncodingError as exc:
        typer.echo(f"pithead keys: {path} is not an authority secret key file: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(cert.encode_public_key(secp256k1.xonly_public(secret)))
