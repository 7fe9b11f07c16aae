// pithead dashboard: reads the JSON API, listens to /api/stream (Server-Sent Events) for live updates,
// draws charts with uPlot. No build step, no framework. The page at /address/<addr> is the same page
// scoped to one payout address.
"use strict";

const REFRESH_MS = 10000;        // tables and charts; the summary cards update on every stream event
const STREAM_RETRY_MS = 15000;   // fall back to polling this long after the stream fails
const MAX_WORKER_SERIES = 6;     // worker chart lines; more would be unreadable
const COLORS = ["#f7931a", "#3b82f6", "#10b981", "#ef4444", "#a855f7", "#eab308"];

const m = location.pathname.match(/^\/address\/([A-Za-z0-9]{14,90})$/);
const ADDRESS = m ? m[1] : null;
const state = { charts: {}, range: "1h", streamOk: false, loaded: false, errors: [] };
window.__pithead = state;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function si(v, unit) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const p = ["", "k", "M", "G", "T", "P", "E", "Z"];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < p.length - 1) { v /= 1000; i++; }
  return (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " " + p[i] + unit;
}
const hps = (v) => si(v, "H/s");
function num(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1000) return si(v, "");
  if (a !== 0 && a < 0.001) return (+v).toExponential(3);
  const t = (+v).toPrecision(4);
  return t.includes(".") ? t.replace(/\.?0+$/, "") : t;
}
const btc = (sat) => (sat / 1e8).toFixed(8) + " BTC";
function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return (s / 3600).toFixed(1) + " h ago";
  return (s / 86400).toFixed(1) + " d ago";
}
function dur(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return Math.round(s) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 86400) return (s / 3600).toFixed(1) + " h";
  if (s < 365 * 86400) return (s / 86400).toFixed(1) + " days";
  return num(s / (365.25 * 86400)) + " years";
}
const pct = (p) => p === null || p === undefined || !isFinite(p) ? "–" : p >= 0.001 ? (100 * p).toPrecision(3) + " %" : (100 * p).toExponential(2) + " %";
const link = (url, text) => url ? `<a href="${esc(url)}" target="_blank" rel="noopener">${text}</a>` : text;
function rateText(h) {
  if (!h) return "–";
  if (!h.enough_shares) return h.note || "too few shares to estimate";
  return `${hps(h.hashrate_hps)} [${hps(h.low_hps)} – ${hps(h.high_hps)}]`;
}
function short(s, n = 10) { s = String(s); return s.length > 2 * n + 1 ? s.slice(0, n) + "…" + s.slice(-n) : s; }
function addrLink(a) { return a.startsWith("@") ? esc(a) : `<a href="/address/${esc(a)}">${esc(short(a))}</a>`; }
function rows(id, items, fn, empty) {
  const tb = $(id).querySelector("tbody");
  tb.innerHTML = items.length ? items.map(fn).join("") : `<tr><td colspan="9" class="empty">${esc(empty)}</td></tr>`;
}

async function get(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function renderRates(list) {
  $("rates").innerHTML = list.map((h) => `
    <div class="card${h.enough_shares ? "" : " few"}" data-window="${esc(h.window)}">
      <span>${esc(h.window)}</span>
      <b>${h.enough_shares ? esc(hps(h.hashrate_hps)) : "–"}</b>
      <small>${h.enough_shares ? "90%: " + esc(hps(h.low_hps)) + " – " + esc(hps(h.high_hps)) : esc(h.note || "too few shares to estimate")}</small>
      <small class="dim">${h.shares} shares in ${Math.round(h.observed_s)} s${h.observed_s < h.span_s ? " (observed, of " + esc(h.window) + ")" : ""}</small>
    </div>`).join("");
}

function pval(p) {
  if (p === null || p === undefined || !isFinite(p)) return "–";
  if (p >= 0.01) return p.toFixed(2);
  return p === 0 ? "< 1e-300" : p.toExponential(1);
}
function renderLuck(list, roundEffort) {
  $("luck").innerHTML = list.map((l) => `
    <div class="card${l.luck === null ? " few" : ""}" data-span="${esc(l.span)}">
      <span>pool luck, ${esc(l.span === "all" ? "all work" : l.span + " blocks")}</span>
      <b>${l.luck === null ? "–" : (100 * l.luck).toFixed(0) + " %"}</b>
      <small>${l.luck === null ? "no work counted yet" : "90%: " + (100 * l.low).toFixed(0) + " – " + (100 * l.high).toFixed(0) + " %"}</small>
      <small class="dim">${l.blocks} found / ${num(l.expected_blocks)} expected</small>
    </div>`).join("");
  $("wh-round").textContent = roundEffort === null || roundEffort === undefined ? "–" : (100 * roundEffort).toFixed(0) + " %";
}
function renderWithholding(w) {
  renderLuck(w.luck, w.round_effort);
  $("wh-level").textContent = w.level;
  $("wh-min").textContent = num(w.min_expected_blocks) + " blocks";
  $("wh-flagged").textContent = w.flagged.length;
  $("wh-flagged").className = w.flagged.length ? "bad" : "ok";
  $("wh-held").textContent = w.holds.length;
  const seen = new Set();
  const list = [...w.flagged, ...w.least_likely].filter((s) => { const k = s.kind + ":" + s.name; if (seen.has(k)) return false; seen.add(k); return true; });
  rows("suspects", list, (s) => {
    const o = s.odds;
    const status = (o.flagged ? `flagged ${ago(o.flagged_since)}` : "ok") + (s.payouts_held ? " · payouts held" : "");
    const who = s.kind === "address" ? `address ${addrLink(s.name)}` : `<span title="${esc(s.name)}">${esc(short(s.name, 14))}</span>`;
    return `<tr class="${o.flagged ? "flagged" : ""}"><td>${who}</td><td>${num(o.expected_blocks)}</td><td>${o.blocks_found}</td>
      <td>${pval(o.p_value)}</td><td>${pval(o.anytime_p)}</td><td>${esc(status)}</td></tr>`;
  }, "no share work counted yet");
  const alert = $("withholding-alert");
  alert.hidden = !w.flagged.length;
  alert.textContent = w.flagged.length
    ? `⚠ Flagged as possibly withholding blocks (${w.flagged.length}): ` +
      w.flagged.slice(0, 5).map((s) => `${short(s.name, 12)} (λ ${num(s.odds.expected_blocks)}, k ${s.odds.blocks_found}, P ${pval(s.odds.p_value)})`).join(", ")
    : "";
}

function renderNetwork(n) {
  $("net-status").textContent = n.available ? "up" : "down: " + (n.error || "unknown");
  $("net-status").className = n.available ? "ok" : "bad";
  $("net-chain").textContent = n.chain ?? "–";
  $("net-height").textContent = n.height ?? "–";
  $("net-diff").textContent = num(n.difficulty);
  $("net-hash").textContent = hps(n.network_hashrate_hps);
  $("net-tage").textContent = n.template_age_s === null || n.template_age_s === undefined ? "–" : n.template_age_s.toFixed(1) + " s";
  $("net-lat").textContent = n.rpc_latency_ms === null || n.rpc_latency_ms === undefined ? "–" : n.rpc_latency_ms.toFixed(2) + " ms";
  $("net-mempool").textContent = n.mempool_tx ?? "–";
}

function renderPool(p) {
  $("pool-name").textContent = p.name;
  $("pool-mode").textContent = `${p.mode} · ${p.scheme.toUpperCase()} · fee ${p.fee_percent}% · ${p.network}`;
  $("pool-url").textContent = p.stratum_url || "–";
  if (ADDRESS) return;
  renderRates(p.hashrate);
  $("pool-workers").textContent = `${p.active_workers} active / ${p.workers}`;
  $("pool-conns").textContent = p.connections ?? "–";
  $("pool-acc").textContent = p.accepted_shares;
  $("pool-rej").textContent = p.rejected_shares;
  $("pool-blocks").textContent = p.blocks_found + (p.last_block_height !== null ? ` (last #${p.last_block_height}, ${ago(p.last_block_time)})` : "");
  $("pool-best").textContent = num(p.best_share);
  $("pool-immature").textContent = btc(p.immature_sat);
  $("pool-payable").textContent = btc(p.payable_sat);
  $("pool-paid").textContent = btc(p.paid_sat);
  renderRejects(p.rejects_1h);
  if (p.luck) renderLuck(p.luck, p.round_effort);
}

function renderRejects(r) {
  rows("rejects", Object.entries(r.by_reason), ([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`, "no rejected shares in the last hour");
}

function renderWorkers(ws) {
  rows("workers", ws, (w) => {
    const h5 = w.hashrate.find((h) => h.window === "5m"), h1 = w.hashrate.find((h) => h.window === "1h");
    return `<tr class="${w.online ? "" : "dim"}"><td title="${esc(w.worker)}"><a href="/address/${esc(w.address)}">${esc(short(w.worker, 14))}</a></td><td>${esc(rateText(h5))}</td>
      <td>${esc(rateText(h1))}</td><td>${w.accepted}</td><td>${w.rejected}</td><td>${num(w.best_share)}</td><td>${ago(w.last_share_time)}</td></tr>`;
  }, "no workers yet");
}

function maturity(b) {
  if (b.status === "confirmed") return "mature";
  if (b.status !== "pending") return "never";
  const c = Math.max(0, b.confirmations);
  return `${c}/100 · ~${dur(b.maturity_eta_s)}`;
}
const STATUS_TITLES = {
  stale: "valid, but the node already had another block at this height (it lost a race); nothing credited",
  rejected: "the node judged it invalid; nothing credited",
  orphaned: "left the best chain; its credits are void",
};
function renderBlocks(bs) {
  rows("blocks", bs, (b) => `<tr><td>${b.height}</td><td title="${esc(b.hash)}">${link(b.explorer_url, `<code>${esc(short(b.hash, 8))}</code>`)}</td>
    <td>${addrLink(b.address)}</td><td>${btc(b.reward_sat)}</td><td>${b.effort === null || b.effort === undefined ? "–" : (100 * b.effort).toFixed(0) + " %"}</td><td class="st-${esc(b.status)}" title="${esc(STATUS_TITLES[b.status] || b.node_result || "")}">${esc(b.status)} (${b.confirmations})</td>
    <td class="maturity"><progress max="1" value="${b.maturity_progress ?? 0}"></progress> ${esc(maturity(b))}</td><td>${ago(b.time)}</td></tr>`,
    "no blocks found yet");
}
function renderConnect(c) {
  $("conn-url").textContent = c.stratum_urls.length ? c.stratum_urls.join(" · ") : "–";
  $("conn-user").textContent = c.user;
  $("conn-pass").textContent = c.password;
  $("conn-hint").textContent = `User name: your payout address (${c.address_hint}), a dot, then any name for this machine, e.g. ADDRESS.rig1.` +
    (c.mode === "solo" ? " Solo mode: a block you find pays your address in its coinbase." : " Pool mode: rewards are shared by work and paid out by the pool.");
  rows("conn-examples", c.examples, (e) => `<tr><td>${esc(e.miner)}</td><td>${Object.entries(e.settings).map(([k, v]) => `${esc(k)}: <code>${esc(v)}</code>`).join("<br>")}</td></tr>`, "");
}
function renderOdds(o) {
  $("odds-pool-eta").textContent = o.pool.expected_block_s ? "~" + dur(o.pool.expected_block_s) : (o.pool.note || "–");
  $("odds-pool-24h").textContent = pct(o.pool.chance_24h);
  if (o.address) {
    $("odds-addr-eta-box").hidden = false; $("odds-addr-24h-box").hidden = false;
    $("odds-addr-eta").textContent = o.address.expected_block_s ? "~" + dur(o.address.expected_block_s) : (o.address.note || "–");
    $("odds-addr-24h").textContent = pct(o.address.chance_24h);
  }
}
function renderConnections(c) {
  const now = Date.now() / 1000;
  const list = ADDRESS ? c.sessions.filter((s) => (s.worker || "").split(".")[0] === ADDRESS) : c.sessions;
  rows("connections", list, (s) => `<tr><td title="${esc(s.worker || "")}">${esc(s.worker ? short(s.worker, 14) : "(not authorized)")}</td>
    <td>${esc(s.user_agent || "–")}</td><td>${dur(now - s.connected_at)}</td><td>${num(s.difficulty)}</td><td>${ago(s.last_share_at)}</td><td>${esc(s.remote)}</td></tr>`,
    c.available ? "no miner connected" : "no pool in this process");
}
function renderShares(id, ss, best) {
  rows(id, ss, (s) => best
    ? `<tr><td>${num(s.share_difficulty)}</td><td title="${esc(s.worker)}">${esc(short(s.worker, 12))}</td><td>${ago(s.time)}</td></tr>`
    : `<tr><td>${ago(s.time)}</td><td title="${esc(s.worker)}">${esc(short(s.worker, 12))}</td><td>${num(s.difficulty)}</td><td>${num(s.share_difficulty)}</td><td>${s.height}</td></tr>`,
    "no shares yet");
}
function renderBalances(bs) {
  rows("balances", bs, (b) => `<tr><td>${addrLink(b.address)}</td><td>${btc(b.immature_sat)}</td><td>${btc(b.mature_sat)}</td><td>${btc(b.payable_sat)}</td><td>${btc(b.paid_sat)}</td></tr>`, "no credits yet");
}
function renderPayouts(ps) {
  rows("payouts", ps, (p) => `<tr><td>${p.id}</td><td>${esc(p.status)}</td><td>${btc(p.total_sat)}</td><td title="${esc(p.txid || "")}">${link(p.explorer_url, `<code>${esc(p.txid ? short(p.txid, 8) : "–")}</code>`)}</td><td>${ago(p.created)}</td></tr>`, "no payouts yet");
}

function chart(key, el, xs, series) {
  const data = [xs, ...series.map((s) => s.values)];
  const width = Math.max(300, el.clientWidth || 800);
  const old = state.charts[key];
  const sameShape = old && old.series.length === series.length + 1 && old.series.slice(1).every((s, i) => s.label === series[i].label);
  if (sameShape) { old.setData(data); return; }
  if (old) old.destroy();
  el.innerHTML = "";
  state.charts[key] = new uPlot({
    width, height: 220,
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false }, fill: i === 0 && series.length === 1 ? "rgba(247,147,26,0.12)" : undefined, value: (u, v) => hps(v) }))],
    axes: [{ stroke: "#9aa4b2", grid: { stroke: "#222a36" } }, { stroke: "#9aa4b2", grid: { stroke: "#222a36" }, size: 80, values: (u, vs) => vs.map((v) => hps(v)) }],
    scales: { x: { time: true } },
    legend: { show: true },
  }, data, el);
}

async function refreshCharts() {
  const scope = ADDRESS ? `&address=${encodeURIComponent(ADDRESS)}` : "";
  const h = await get(`/api/hashrate?range=${state.range}${scope}`);
  chart("pool", $("chart-pool"), h.points.map((p) => p.time), [{ label: ADDRESS ? "address" : "pool", values: h.points.map((p) => p.hashrate_hps) }]);
  const ws = ADDRESS ? state.addressWorkers || [] : state.workers || [];
  const top = ws.slice(0, MAX_WORKER_SERIES);
  if (!top.length) { $("chart-workers").innerHTML = '<p class="note">no workers yet</p>'; state.charts.workers?.destroy(); delete state.charts.workers; return; }
  const hs = await Promise.all(top.map((w) => get(`/api/hashrate?range=${state.range}&worker=${encodeURIComponent(w.worker)}`)));
  chart("workers", $("chart-workers"), hs[0].points.map((p) => p.time), hs.map((x, i) => ({ label: short(top[i].worker, 8), values: x.points.map((p) => p.hashrate_hps) })));
}

async function refreshAddress() {
  const a = await get(`/api/addresses/${encodeURIComponent(ADDRESS)}?limit=50`);
  state.addressWorkers = a.workers;
  $("addr-unknown").hidden = a.known;
  renderRates(a.hashrate);
  $("bal-immature").textContent = btc(a.balance.immature_sat);
  $("bal-mature").textContent = btc(a.balance.mature_sat);
  $("bal-payable").textContent = btc(a.balance.payable_sat);
  $("bal-paid").textContent = btc(a.balance.paid_sat);
  $("addr-best").textContent = num(a.best_share);
  $("addr-shares").textContent = `${a.accepted_shares} accepted / ${a.rejected_shares} rejected`;
  renderWorkers(a.workers);
  renderBlocks(a.blocks);
  renderShares("shares", a.recent_shares, false);
  renderRejects(a.rejects_1h);
  renderBalances([a.balance]);
  renderPayouts(a.payouts);
  const hold = $("addr-hold");
  hold.hidden = !a.payout_hold;
  hold.textContent = a.payout_hold ? `Payouts held since ${new Date(a.payout_hold.since * 1000).toISOString()} by the operator: ${a.payout_hold.reason}` : "";
  renderWithholding(await get(`/api/withholding?limit=20&address=${encodeURIComponent(ADDRESS)}`));
  if (a.withholding) {
    const o = a.withholding;
    $("wh-title").textContent = `Block withholding · this address: λ ${num(o.expected_blocks)}, k ${o.blocks_found}, P(X ≤ k) ${pval(o.p_value)}${o.flagged ? " · FLAGGED" : ""}`;
  }
  // The ledger keeps raw shares for its reward window: the address's best among those.
  const mine = await get(`/api/shares/recent?limit=1000&address=${encodeURIComponent(ADDRESS)}`);
  renderShares("best", mine.sort((x, y) => y.share_difficulty - x.share_difficulty).slice(0, 10), true);
}

async function refreshAll() {
  try {
    const scope = ADDRESS ? `?address=${encodeURIComponent(ADDRESS)}` : "";
    const [pool, net, connect, odds, conns] = await Promise.all([get("/api/pool"), get("/api/network"), get("/api/connect"),
      get("/api/odds" + scope), get("/api/connections")]);
    renderPool(pool); renderNetwork(net); renderConnect(connect); renderOdds(odds); renderConnections(conns);
    if (ADDRESS) {
      await refreshAddress();
    } else {
      const [ws, bs, ss, best, bal, pay, wh] = await Promise.all([
        get("/api/workers?limit=200"), get("/api/blocks?limit=20"), get("/api/shares/recent?limit=20"),
        get("/api/shares/best?limit=10"), get("/api/balances?limit=50"), get("/api/payouts?limit=20"),
        get("/api/withholding?limit=20")]);
      state.workers = ws;
      renderWorkers(ws); renderBlocks(bs); renderShares("shares", ss, false); renderShares("best", best, true);
      renderBalances(bal); renderPayouts(pay); renderWithholding(wh);
    }
    await refreshCharts();
    state.loaded = true;
    document.body.dataset.ready = "1";
  } catch (e) {
    state.errors.push(String(e));
    console.warn("refresh failed:", e);
  }
}

function stream() {
  if (!window.EventSource) return;
  const es = new EventSource("/api/stream");
  es.addEventListener("summary", (ev) => {
    const d = JSON.parse(ev.data);
    state.streamOk = true;
    $("live").className = "live on";
    if (d.network) renderNetwork(d.network);
    if (d.pool) renderPool(d.pool);
  });
  es.onerror = () => {
    $("live").className = "live off";
    state.streamOk = false;
    es.close();
    setTimeout(stream, STREAM_RETRY_MS);
  };
}

function init() {
  if (ADDRESS) {
    $("address-head").hidden = false;
    $("addr").textContent = ADDRESS;
    $("lookup-q").value = ADDRESS;
    $("rate-title").textContent = "Address hashrate";
    $("pool-kv").hidden = true;
    $("bal-title").textContent = "Balance";
    document.title = "pithead · " + short(ADDRESS);
  }
  $("range").addEventListener("change", (e) => { state.range = e.target.value; refreshCharts().catch((x) => console.warn(x)); });
  window.addEventListener("resize", () => Object.values(state.charts).forEach((c) => c.setSize({ width: Math.max(300, c.root.parentElement.clientWidth), height: 220 })));
  get("/healthz").then((h) => { if (h.farm) { $("farm-link").hidden = false; $("farm-nav").hidden = false; } if (h.proxy) $("proxy-nav").hidden = false; }).catch(() => {});
  refreshAll();
  setInterval(refreshAll, REFRESH_MS);
  stream();
}
init();
