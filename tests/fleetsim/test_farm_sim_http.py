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
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPATCH /api/system HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{}"
    )
    assert [r.path for r in reqs] == ["/a"]
    reqs = p.feed(b"  \r\n")
    assert len(reqs) == 1 and reqs[0].method == "PATCH" and reqs[0].body == b"{}  "[:4] and reqs[0].keep_alive
    r = h.HttpRequestParser().feed(b"GET /x?y=1 HTTP/1.0\r\n\r\n")[0]
    assert r.path == "/x" and not r.keep_alive
    r = h.HttpRequestParser().feed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
    assert not r.keep_alive and r.header("CONNECTION") == "close"


def test_parser_takes_what_real_clients_send() -> None:
    """h11 frames the requests: bare-LF lines (busybox wget, some scripts), pipelined requests split
    anywhere, chunked bodies (curl -T -), and keep-alive, each byte read once."""
    reqs = h.HttpRequestParser().feed(b"GET /cgi-bin/get_system_info.cgi HTTP/1.1\nHost: 10.0.0.5\n\n")
    assert [r.path for r in reqs] == ["/cgi-bin/get_system_info.cgi"] and reqs[0].keep_alive
    p = h.HttpRequestParser()
    stream = (b"GET /api/system/info HTTP/1.1\r\nHost: x\r\n\r\n"
              b"PATCH /api/system HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"
              b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got: list[h.HttpRequest] = []
    for i in range(0, len(stream), 7):  # in 7-byte pieces, as a slow network delivers them
        got += p.feed(stream[i:i + 7])
    assert [(r.method, r.path) for r in got] == [("GET", "/api/system/info"), ("PATCH", "/api/system"),
                                                 ("GET", "/last")]
    assert got[1].body == b'{"a":1}' and got[0].keep_alive and not got[2].keep_alive


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20000\r\n" + b"x" * 65537, 413),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host (RFC 9112 §3.2), as on the node
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"G\x00T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"X" * (h.MAX_HEAD_BYTES + 1), 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * h.MAX_HEADERS + b"\r\n", 431),
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
