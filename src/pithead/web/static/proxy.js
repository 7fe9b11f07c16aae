// The farm proxy's page: upstreams (what each pool credited), the operator's switch and drain, machines per
// rack. Reads /proxy/api/status and /proxy/api/racks every few seconds; no build step, no library.
"use strict";
(() => {
  const REFRESH_MS = 3000;
  const TOKEN_KEY = "pithead-proxy-token";
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const UNITS = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
  const rate = (h) => {
    if (h == null || !isFinite(h)) return "–";
    let i = 0;
    while (h >= 1000 && i < UNITS.length - 1) { h /= 1000; i++; }
    return `${h.toFixed(h >= 100 ? 0 : h >= 10 ? 1 : 2)} ${UNITS[i]}`;
  };
  const ms = (s) => (s == null ? "–" : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);
  const reasons = (o) => {
    const e = Object.entries(o || {});
    return e.length ? e.map(([k, n]) => `${esc(k)}: ${n}`).join(", ") : '<span class="dim">none</span>';
  };
  const win = (hs, name) => (hs || []).find((h) => h.window === name);
  const credited = (h) => h ? `${rate(h.hashrate_hps)}<br><span class="dim">${rate(h.low_hps)}–${rate(h.high_hps)}</span>` : "–";
  let page = {token_required: false, local: false};
  let lastStatus = null;

  async function get(path) {
    const r = await fetch(path, {headers: {accept: "application/json"}});
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  function canAct() { return !page.token_required ? page.local : !!sessionStorage.getItem(TOKEN_KEY); }

  async function act(kind, upstream) {
    const headers = {"content-type": "application/json"};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.authorization = `Bearer ${token}`;
    $("msg").textContent = `${kind} ${upstream}…`;
    try {
      const r = await fetch(`/proxy/api/${kind}`, {method: "POST", headers, body: JSON.stringify({upstream})});
      const body = await r.json().catch(() => ({}));
      if (!r.ok) {
        if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY);
        $("msg").innerHTML = `<span class="bad">${esc(kind)} refused: ${esc(body.detail || r.status)}</span>`;
        return;
      }
      $("msg").textContent = `${kind} ${upstream}: done; mining on ${body.active ?? "no pool"}`;
      showStatus(body);
    } catch (e) {
      $("msg").innerHTML = `<span class="bad">${esc(kind)} failed: ${esc(e.message)}</span>`;
    }
  }

  function showStatus(s) {
    lastStatus = s;
    $("active").textContent = s.active ?? "none";
    $("reason").textContent = (s.pinned ? `pinned to ${s.pinned}; ` : "") + (s.reason ?? "–");
    $("machines").textContent = `${s.machines.connected} / ${s.machines.ready}`;
    $("judged").textContent = s.machines.shares_judged;
    $("aggregation").textContent = `${s.aggregation_percent.toFixed(1)} % (${s.upstream_connections} pool connections)`;
    $("failovers").textContent = s.failovers;
    $("stratum").textContent = s.stratum_url;
    const allowed = canAct();
    const rows = s.upstreams.map((u) => {
      const sh = u.shares;
      const ready = u.connections.filter((c) => c.ready).length;
      const draining = (s.draining || []).includes(u.name);
      const state = u.name === s.active ? "active" : u.state;
      const title = allowed ? "" : ' title="needs the proxy API token (or a loopback connection without one)"';
      const dis = allowed ? "" : " disabled";
      const buttons = `<button class="act" data-kind="switch" data-up="${esc(u.name)}"${dis}${title}>switch here</button> ` +
        `<button class="act" data-kind="${draining ? "resume" : "drain"}" data-up="${esc(u.name)}"${dis}${title}>${draining ? "resume" : "drain"}</button>`;
      return `<tr data-upstream="${esc(u.name)}"><td><b>${esc(u.name)}</b><br><span class="dim">${esc(u.url)}</span></td>` +
        `<td><span class="st ${esc(state)}">${esc(state)}</span>${u.problem ? `<br><span class="bad">${esc(u.problem)}</span>` : ""}</td>` +
        `<td class="num">${ready} / ${u.connections.length}</td><td class="num">${u.difficulty ?? "–"}</td>` +
        `<td class="num">${sh.forwarded}</td><td class="num accepted">${sh.accepted}</td><td>${reasons(sh.rejected)}</td>` +
        `<td class="num">${sh.stale}</td><td>${reasons(sh.lost)}</td>` +
        `<td class="num">${ms(u.latency.p50_s)} / ${ms(u.latency.p99_s)}</td>` +
        `<td class="num">${credited(win(u.hashrate, "5m"))}</td><td class="num">${credited(win(u.hashrate, "1h"))}</td>` +
        `<td>${buttons}</td></tr>`;
    });
    $("upstreams").tBodies[0].innerHTML = rows.join("") || '<tr><td colspan="13" class="dim">no upstream</td></tr>';
  }

  function showRacks(r) {
    const note = r.labels == null ? "no farm joined: every machine is unlabelled"
      : r.labels.error ? `the farm's labels could not be read (${r.labels.error})`
      : `labels from the farm's inventory (${r.labels.devices} devices)`;
    $("labels-note").textContent = note;
    const rows = r.racks.map((k) => `<tr data-rack="${esc(k.rack)}"><td>${k.site ? esc(k.site) : '<span class="dim">unlabelled</span>'}</td>` +
      `<td>${k.rack ? esc(k.rack) : '<span class="dim">unlabelled</span>'}</td><td class="num">${k.machines}</td>` +
      `<td class="num">${k.mining}</td><td class="num">${k.forwarded}</td><td class="num accepted">${k.accepted}</td>` +
      `<td>${reasons(k.rejected)}</td><td class="num">${k.stale}</td>` +
      `<td class="num">${credited(win(k.hashrate, "5m"))}</td><td class="num">${credited(win(k.hashrate, "1h"))}</td></tr>`);
    $("racks").tBodies[0].innerHTML = rows.join("") || '<tr><td colspan="10" class="dim">no machine yet</td></tr>';
  }

  async function refresh() {
    try {
      const [s, r] = await Promise.all([get("/proxy/api/status"), get("/proxy/api/racks")]);
      showStatus(s);
      showRacks(r);
      $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
      $("status").className = "";
      document.body.dataset.ready = "1";
    } catch (e) {
      $("status").textContent = `cannot reach the proxy: ${e.message}`;
      $("status").className = "bad";
    }
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.act");
    if (b && !b.disabled) act(b.dataset.kind, b.dataset.up);
  });
  $("token-save").addEventListener("click", () => {
    const t = $("token").value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    if (lastStatus) showStatus(lastStatus);
  });

  get("/proxy/api/page").then((p) => {
    page = p;
    $("token-row").hidden = !p.token_required;
    $("nav-dash").hidden = !p.dashboard;
    $("nav-farm").hidden = !p.farm;
  }).catch(() => {}).finally(() => { refresh(); setInterval(refresh, REFRESH_MS); });
})();
