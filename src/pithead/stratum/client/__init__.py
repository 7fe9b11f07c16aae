"""pithead.stratum.client."""
