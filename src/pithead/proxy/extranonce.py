"""Extranonce subdivision: one upstream connection's extranonce2 shared among many machines (pure).

The upstream gives the connection (extranonce1 `E1`, extranonce2 size `n`). The proxy keeps `k`
(`tag_bytes`) bytes of extranonce2 as a fixed-width tag, one per machine, and the machine rolls `m`
(`machine_extranonce2_size`) bytes; whatever is left (`n - k - m`) is zero padding. Machines see

    coinb1' = coinb1 ‖ E1 ‖ padding      extranonce1 = tag      extranonce2_size = m

and the proxy submits upstream `extranonce2 = padding ‖ tag ‖ machine's extranonce2`: the coinbase bytes
are identical on both sides, so a share needs no rehashing to be forwarded, and two machines (distinct
tags) can never build the same coinbase. The tag is the machine's own extranonce1, allocated once per
machine session by the pool shell's allocator, so a failover to another upstream (another E1, another
coinb1) changes only coinb1': no machine has to reconnect or be told a new extranonce (the "design
option" of the field notes, sv2-and-proxy-field-notes.md §9.1), provided every upstream leaves room for
`k + m` bytes. Tags are fixed-width (never slush's 1-or-2 bytes, where tag 01 + extranonce2 02.. equals
tag 0102 + ..).

An upstream that gives less than `k + m` bytes is refused with `ExtranonceTooSmall`, which says which
settings to lower; narrowing the machines' share of it would need every machine told a new extranonce2
size, and cgminer-derived firmware does not take that without reconnecting.

What it is not: the tag allocator (`pithead.stratum.extranonce.ExtranonceAllocator`, sized `k`).
"""

from __future__ import annotations

from dataclasses import dataclass


class ExtranonceTooSmall(ValueError):
    """An upstream's extranonce2 leaves no room for the proxy's tag and the machines' extranonce2."""


@dataclass(frozen=True, slots=True)
class ExtranonceSplit:
    """How one upstream connection's extranonce space is shared (see the module docstring)."""

    extranonce1: bytes  # the upstream's, for this connection
    extranonce2_size: int  # the upstream's
    tag_bytes: int
    machine_extranonce2_size: int

    @property
    def padding(self) -> bytes:
        return bytes(self.extranonce2_size - self.tag_bytes - self.machine_extranonce2_size)

    def coinb1(self, upstream_coinb1: bytes) -> bytes:
        """What machines get as coinb1: everything of the coinbase up to their tag."""
        return upstream_coinb1 + self.extranonce1 + self.padding

    def upstream_extranonce2(self, tag: bytes, machine_extranonce2: bytes) -> bytes:
        """The extranonce2 to submit upstream for a machine's share."""
        if len(tag) != self.tag_bytes or len(machine_extranonce2) != self.machine_extranonce2_size:
            raise ValueError(f"a tag of {len(tag)} bytes and an extranonce2 of {len(machine_extranonce2)} do not "
                             f"fit {self.tag_bytes} + {self.machine_extranonce2_size}")
        return self.padding + tag + machine_extranonce2


def split(extranonce1: bytes, extranonce2_size: int, tag_bytes: int, machine_extranonce2_size: int) -> ExtranonceSplit:
    """The split of an upstream connection's (extranonce1, extranonce2 size); `ExtranonceTooSmall` when it
    leaves less than `tag_bytes + machine_extranonce2_size` bytes."""
    need = tag_bytes + machine_extranonce2_size
    if extranonce2_size < need:
        raise ExtranonceTooSmall(
            f"the pool gives extranonce2_size {extranonce2_size}, the proxy needs {need} "
            f"([proxy] tag_bytes {tag_bytes} + extranonce2_size {machine_extranonce2_size}): lower "
            f"[proxy] extranonce2_size (2 at least) or tag_bytes, or use another pool")
    return ExtranonceSplit(extranonce1, extranonce2_size, tag_bytes, machine_extranonce2_size)
