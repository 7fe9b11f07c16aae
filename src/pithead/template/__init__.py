"""pithead.template."""
