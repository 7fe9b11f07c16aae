"""pithead.store."""
