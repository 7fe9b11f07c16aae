"""pithead.farm."""
