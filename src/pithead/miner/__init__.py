"""pithead.miner."""
