"""pithead.template.sources: where templates come from (nodes, failover and its leader choice, a static
one for tests)."""
