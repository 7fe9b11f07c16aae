"""pithead.ledger.bus: moving share and block events from the pools to the ledger (memory, redis)."""
