"""pithead.stratum.server."""
