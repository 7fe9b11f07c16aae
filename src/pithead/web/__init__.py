"""pithead.web."""
