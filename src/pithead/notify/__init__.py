"""Outgoing notifications: what the parts raise (`pithead.events.Notice`) delivered to an operator's phone.

- `routing`: which notices go where (`[[notify.routes]]`: kinds or patterns, a least severity), pure;
- `dedup`: the same kind and subject within a window is one message, the next one says how many were folded;
- `deliver`: one apprise destination (a URL), sent to in a thread of its own;
- `notifier`: the `Notifier`, a `NoticeSink` (bounded, never blocking its caller, from any thread) whose
  tasks route, deduplicate and deliver with bounded retries, and count what happened;
- `metrics`: those counts as one Prometheus metric family.

What it is not: deciding what is worth a notice (the parts do: the ledger, the template source, the farm),
or any part of the pool. Parts never import this package; they are handed a `NoticeSink`.
"""
