"""pithead.stratum."""
