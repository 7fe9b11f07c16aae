"""Helpers for the simulated-fleet tests: a raw cgminer client and free loopback subnets."""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest

IO_TIMEOUT_S = 5.0


async def api_call(ip: str, port: int, payload: bytes) -> bytes:
    """Send one cgminer API request and read until the device closes the connection."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), IO_TIMEOUT_S)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


@pytest.fixture
def api():
    """The raw cgminer client, as a fixture (test modules never import conftest by name)."""
    return api_call


def port_free(ip: str, port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def subnet() -> str:
    """A /24 in 127.100–199.x.0 not used by another test process at the moment (random, then checked)."""
    rng = random.Random(os.getpid() ^ id(object()))
    for _ in range(50):
        net = f"127.{rng.randint(100, 199)}.{rng.randint(0, 255)}.0/24"
        first = net.replace(".0/24", ".1")
        if port_free(first, 4028) and port_free(first, 80):
            return net
    pytest.skip("no free loopback subnet with ports 80/4028 available")
