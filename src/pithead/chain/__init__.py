"""pithead.chain."""
