"""The fuzz harness: hypothesis against the live pool server (junk lines, well-shaped requests with random
fields, submits on live jobs) and against the embedded node's JSON-RPC over HTTP.

A short run is part of the suite (`tests/fuzz/test_fuzz.py`, a bounded number of examples); a long run is
started by hand, from the repository root::

    PYTHONPATH=src python -m tests.fuzz --minutes 3 [--target pool|node|all]

It prints how many inputs it tried per target and every finding (the input, shrunk, and what went wrong).
"""
