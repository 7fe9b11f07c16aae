"""pithead.node."""
