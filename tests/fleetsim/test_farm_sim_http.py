"""The simulator's sans-IO HTTP codec and server-side Digest auth."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pithead.fleetsim import http as h


def test_rfc2617_digest_vector() -> None:
    # RFC 2617 §3.5: Mufasa / "Circle Of Life" → response 6629fae49393a05397450978507c4ef1
    ha1 = h.digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    resp = h.digest_response(
        ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html", "auth", "00000001", "0a4f113b"
    )
    assert resp == "6629fae49393a05397450978507c4ef1"


def test_digest_round_trip_and_rejections() -> None:
    auth = h.DigestAuthority("antMiner Configuration", "root", "root", secret=b"k" * 16)
    challenge = auth.challenge(1000.0)
    nonce = challenge.split('nonce="')[1].split('"')[0]
    ha1 = h.digest_ha1("root", "antMiner Configuration", "root")
    good = h.digest_response(ha1, nonce, "GET", "/cgi-bin/x.cgi", "auth", "00000001", "abc")
    header = (
        f'Digest username="root", realm="antMiner Configuration", nonce="{nonce}", uri="/cgi-bin/x.cgi", '
        f'response="{good}", qop=auth, nc=00000001, cnonce="abc", algorithm=MD5'
    )
    assert auth.verify("GET", header, 1000.0)
    assert auth.verify("GET", header, 1000.0 + h.NONCE_BUCKET_S)  # previous bucket still valid
    assert not auth.verify("GET", header, 1000.0 + 3 * h.NONCE_BUCKET_S)  # stale nonce
    assert not auth.verify("POST", header, 1000.0)  # method is part of the digest
    assert not auth.verify("GET", header.replace('username="root"', 'username="admin"'), 1000.0)
    assert not auth.verify("GET", None, 1000.0)
    assert not auth.verify("GET", "Basic cm9vdDpyb290", 1000.0)
    assert not auth.verify("GET", 'Digest username="root", realm="unterminated', 1000.0)


def test_parser_keep_alive_and_bodies() -> None:
    p = h.HttpRequestParser()
    reqs = p.feed(
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPATCH /api/system HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}"
    )
    assert [r.path for r in reqs] == ["/a"]
    reqs = p.feed(b"  \r\n")
    assert len(reqs) == 1 and reqs[0].method == "PATCH" and reqs[0].body == b"{}  "[:4] and reqs[0].keep_alive
    r = h.HttpRequestParser().feed(b"GET /x?y=1 HTTP/1.0\r\n\r\n")[0]
    assert r.path == "/x" and not r.keep_alive
    r = h.HttpRequestParser().feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")[0]
    assert not r.keep_alive and r.header("CONNECTION") == "close"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"X" * (h.MAX_HEAD_BYTES + 1), 431),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * (h.MAX_HEADERS + 1) + b"\r\n", 431),
    ],
)
def test_parser_refuses_bad_input_with_a_status(data: bytes, status: int) -> None:
    with pytest.raises(h.HttpError) as ei:
        h.HttpRequestParser().feed(data)
    assert ei.value.status == status


@given(st.binary(max_size=600))
def test_parser_never_fails_otherwise(data: bytes) -> None:
    try:
        h.HttpRequestParser().feed(data)
    except h.HttpError:
        pass
