"""pithead.farm.sim."""
