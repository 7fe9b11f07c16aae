"""pithead.stratum.protocol."""
