"""Device drivers: vendor adapters that turn wire protocols into the canonical model."""
