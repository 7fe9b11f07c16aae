"""pithead.bench."""
