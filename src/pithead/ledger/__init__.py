"""pithead.ledger."""
