"""pithead: a whole Bitcoin mining operation in one package.

Node work (templates from Bitcoin Core or the embedded regtest node), a Stratum V1 pool, a reference miner
with a native hashing core, the ledger, the farm manager with a simulated fleet, and the web face.
See DESIGN.md (shared) for the map; each subpackage's docstring says what it is and is not.
"""

__version__ = "0.1.0"
