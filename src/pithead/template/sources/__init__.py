"""pithead.template.sources: where templates come from (nodes, failover, a static one for tests)."""
