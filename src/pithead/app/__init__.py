"""pithead.app: the assembly of the running operation (parts from the config, their life)."""
