"""pithead.proxy: the farm proxy — a farm's machines folded into a few connections to upstream pools.

- :mod:`.extranonce`: how one upstream connection's extranonce2 is split (a fixed-width tag per machine,
  the rest for the machine), so no two machines can ever search the same work (pure).
- :mod:`.jobs`: the machines' jobs relayed from the upstream connections, proxy-local job ids mapped back,
  keepalive jobs, each machine routed to one connection (pure; the pool session's `JobSource`).
- :mod:`.failover`: each upstream's health and which one the machines mine on, with hysteresis and the
  operator's switch and drain (pure; time is a parameter).
- :mod:`.figures`: what an operator looks at, per upstream and per machine (pure).
- :mod:`.upstream`: the connections to one upstream pool (the client shell of `pithead.stratum.client`).
- :mod:`.proxy`: `FarmProxy`, the whole: the pool's server shell for the machines, the upstreams, the
  share route that forwards what the upstream credits, failover and the operator's actions.
- :mod:`.build`: a `FarmProxy` from `[proxy]`.

Not here: the HTTP API and metrics (`pithead.web.proxy`), the process (`pithead.app.proxy`), the command
(`pithead.cli.proxy`).
"""
