// The farm page: the fleet (rack map, device table, alerts, energy) at #/, one device at #/device/<id>.
// It reads the farm's JSON API (server-side paging, so a fleet of 24,000 costs one page of rows) and acts
// through the audited action endpoints, sending the farm token the operator typed (kept in sessionStorage,
// never in localStorage) as a bearer header. No build step, no framework; charts are the vendored uPlot.
"use strict";
const base = location.pathname.replace(/\/$/, "");
const $ = id => document.getElementById(id);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const num = (v, d=2) => v === null || v === undefined ? "–" : Number(v).toFixed(d);
const signed = (v, d=2) => v === null || v === undefined ? "–" : `<em class="${v < 0 ? "neg" : "pos"}">${num(v, d)}</em>`;
const TOKEN_KEY = "pithead.farm.token";
const REFRESH_MS = 10000;
const PAGE_ROWS = 100;
const ARM_MS = 5000;  // a destructive button asks for a second click within this long
const farm = window.__farm = {charts: {}, info: null, table: null, detail: null, notes: null};
const table = {sort: "rack", desc: false, offset: 0, q: "", filters: {}};
let timer = null;

function duration(s) {
  if (s === null || s === undefined) return "–";
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
}
function when(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }
function devUrl(id) { return "#/device/" + encodeURIComponent(id); }
function apiDev(id, what) { return `/api/devices/${encodeURIComponent(id)}/${what}`; }
async function get(p) {
  const r = await fetch(base + p);
  if (!r.ok) throw new Error(p + " " + r.status);
  return r.json();
}
function badge(text) { return text ? `<span class="demo" title="${esc(text)}">${esc(text.split(":")[0])}</span>` : ""; }
function kv(label, value) { return `<div><span>${esc(label)}</span><b>${value}</b></div>`; }
function setStatus(text, bad) { $("status").className = bad ? "bad" : ""; $("status").textContent = text; }

// ---- the token -------------------------------------------------------------------------------------
function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function showToken() {
  const need = farm.info && farm.info.token_required;
  $("token-state").textContent = token() ? "token set (this tab)" : need ? "actions need a token" : "no token (loopback)";
}
$("token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  $("token").value = "";
  showToken();
});
$("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showToken(); });

// ---- the fleet view --------------------------------------------------------------------------------
function drawRacks(racks) {
  const counts = {};
  for (const rs of Object.values(racks.sites)) for (const cells of Object.values(rs))
    for (const c of cells) counts[c.colour] = (counts[c.colour] || 0) + 1;
  $("legend").innerHTML = Object.entries(racks.colours)
    .map(([k, c]) => `<span><i style="background:${c}"></i>${esc(k)}<b>${counts[k] || 0}</b></span>`).join("");
  let html = "";
  for (const [site, rs] of Object.entries(racks.sites)) {
    html += `<div class="site"><div class="site-name">site <b>${esc(site)}</b></div><div class="racks">`;
    for (const [rack, cells] of Object.entries(rs)) {
      const t = racks.totals[site][rack];  // counted on the server: fresh readings of answering machines only
      html += `<div class="rack" data-rack="${esc(rack)}"><b>${esc(rack)} (${cells.length})</b>`
        + `<small class="rack-total">${num(t.hashrate_ths, 1)} TH/s · ${t.hashing} hashing</small><div class="slots">`
        + cells.map(c => `<a class="cell" href="${devUrl(c.id)}" data-id="${esc(c.id)}" title="${esc(c.position)} · ${esc(c.model)} · ${esc(c.state)} · ${num(c.hashrate_ths)} TH/s&#10;${esc(c.id)}" style="background:${racks.colours[c.colour]}"></a>`).join("")
        + `</div></div>`;
    }
    html += `</div></div>`;
  }
  $("racks").innerHTML = html || '<span class="tag">no devices yet</span>';
}

function tableQuery(facets) {
  const p = new URLSearchParams({sort: table.sort, desc: table.desc, offset: table.offset, limit: PAGE_ROWS});
  if (table.q) p.set("q", table.q);
  for (const [k, v] of Object.entries(table.filters)) if (v) p.set(k, v);
  if (facets) p.set("facets", "true");
  return "/api/table?" + p;
}

function fillFacets(facets) {
  for (const sel of document.querySelectorAll("#filters select")) {
    const name = sel.dataset.facet, keep = sel.value, first = sel.options[0].outerHTML;
    const values = facets[name] || [];
    sel.innerHTML = first + values.map(v => `<option value="${esc(v)}">${esc(v)}</option>`).join("");
    sel.value = values.includes(keep) ? keep : "";
  }
}

function drawTable(page) {
  farm.table = page;
  if (page.facets) fillFacets(page.facets);
  for (const th of document.querySelectorAll("#devices th.sort"))
    th.classList.toggle("sorted", th.dataset.sort === page.sort), th.dataset.dir = th.dataset.sort === page.sort ? (page.desc ? "desc" : "asc") : "";
  const fig = (r, v, d) => `<td class="num${r.fresh ? "" : " stale"}">${num(v, d)}</td>`;
  $("devices").tBodies[0].innerHTML = page.rows.length ? page.rows.map(r => `<tr data-id="${esc(r.id)}">
    <td><a href="${devUrl(r.id)}">${esc(r.host)}:${r.port}</a></td>
    <td>${esc(r.site || "-")} / ${esc(r.rack || "-")} / ${esc(r.position || "-")}</td>
    <td>${esc(r.model)}</td><td>${esc(r.firmware || "–")}</td>
    <td class="st-${esc(r.state)}" title="${esc(r.error || "")}">${esc(r.state)}</td>
    ${fig(r, r.hashrate_ths, 2)}${fig(r, r.power_w, 0)}${fig(r, r.efficiency_j_per_th, 1)}${fig(r, r.max_chip_temp_c, 0)}
    <td class="num${r.fresh ? "" : " stale"}">${r.fans_rpm.length ? r.fans_rpm.join(" ") : "–"}</td>
    <td class="num">${duration(r.uptime_s)}</td><td>${esc(r.pool || "–")}</td></tr>`).join("")
    : '<tr><td class="empty" colspan="12">no device matches</td></tr>';
  const last = Math.min(page.offset + page.rows.length, page.total);
  $("page-info").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}` : "0 of 0";
  $("devices-count").textContent = page.total === page.fleet ? `${page.fleet} devices` : `${page.total} of ${page.fleet} devices match`;
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
}

async function loadTable(facets) { drawTable(await get(tableQuery(facets))); }

let searchTimer = null;
$("q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { table.q = $("q").value.trim(); table.offset = 0; loadTable(false).catch(showError); }, 250);
});
for (const sel of document.querySelectorAll("#filters select"))
  sel.addEventListener("change", () => { table.filters[sel.dataset.facet] = sel.value; table.offset = 0; loadTable(false).catch(showError); });
for (const th of document.querySelectorAll("#devices th.sort"))
  th.addEventListener("click", () => {
    if (table.sort === th.dataset.sort) table.desc = !table.desc; else { table.sort = th.dataset.sort; table.desc = false; }
    table.offset = 0; loadTable(false).catch(showError);
  });
$("prev").addEventListener("click", () => { table.offset = Math.max(0, table.offset - PAGE_ROWS); loadTable(false).catch(showError); });
$("next").addEventListener("click", () => { table.offset += PAGE_ROWS; loadTable(false).catch(showError); });
$("devices").tBodies[0].addEventListener("click", ev => {
  const tr = ev.target.closest("tr[data-id]");
  if (tr && !ev.target.closest("a")) location.hash = devUrl(tr.dataset.id);
});

// ---- site power: the budget the site is held to (whose), its draw now, machines lowered / asleep -------
const SOURCES = {hold: "an operator's request", budget: "standing budget", price: "price above strike", none: "none"};
function drawSitePower(p) {
  const mode = p.mode === "power" ? "curtailment by power" : p.mode === "onoff" ? "curtailment on/off" : "not available";
  $("power-mode").textContent = mode;
  const st = p.state, h = p.hold;
  const budget = st ? (st.budget_kw === null ? "none (full power)" : `${num(st.budget_kw, 1)} kW`) : "–";
  $("site-power").innerHTML = kv("budget", budget) + kv("by", st ? esc(SOURCES[st.source] || st.source) : "–")
    + kv("site now", st ? `${num(st.site_kw)} kW` : "–") + kv("planned", st ? `${num(st.planned_kw)} kW` : "–")
    + kv("machines lowered", st ? String(st.lowered) : "–") + kv("asleep", st ? String(st.asleep) : "–")
    + kv("settling", st ? String(st.settling) : "–") + kv("last step", st ? when(st.time) : "–");
  $("site-power-note").innerHTML = (h ? `<b>held by ${esc(h.actor)}</b> at ${h.kw === null ? "full power" : num(h.kw, 1) + " kW"}
      until ${when(h.until)}${p.running ? " (getting there)" : ""} · ` : "")
    + (st ? esc(st.plan.reason) : p.mode ? "no step yet" : "site power control needs the farm service with actions");
}

async function refreshFleet() {
  const [racks, alerts, e, power, sh] = await Promise.all([get("/api/racks"), get("/api/alerts"), get("/api/energy"),
                                                           get("/api/power/site"), get("/api/shares")]);
  drawRacks(racks);
  drawSitePower(power);
  // where "hashing but no shares" comes from (a farm proxy), and why it cannot be judged now
  const src = $("shares-source");
  src.hidden = !sh.configured;
  src.innerHTML = !sh.configured ? "" : sh.problem
    ? `<b class="sev-warning">"no shares" not judged:</b> ${esc(sh.problem)} (open ones are kept as they are)`
    : `"no shares" judged on ${esc(sh.source || "the pool")}${sh.machines != null ? ` (${sh.machines} machines)` : ""}`;
  await loadTable(true);
  $("alerts").innerHTML = "<tr><th>opened</th><th>severity</th><th>device</th><th>kind</th><th>message</th></tr>" +
    (alerts.length ? alerts.map(a => `<tr><td>${new Date(a.opened_at * 1000).toLocaleTimeString()}</td>
      <td class="sev-${esc(a.severity)}">${esc(a.severity)}</td><td><a href="${devUrl(a.device_id)}">${esc(a.device_id)}</a></td>
      <td>${esc(a.kind)}</td><td>${esc(a.message)}</td></tr>`).join("")
      : '<tr><td class="empty" colspan="5">no open alerts</td></tr>');
  const f = e.fleet, notes = farm.notes;
  $("fleet").innerHTML = kv("devices", `${f.hashing} hashing / ${f.devices}`) + kv("hashrate", `${num(f.hashrate_ths)} TH/s`)
    + kv("power", `${num(f.power_w / 1000)} kW`) + kv("efficiency", `${num(f.efficiency_j_per_th)} J/TH`)
    + kv("cost / day", num(f.cost_per_day)) + kv("revenue / day", num(f.revenue_per_day))
    + kv("profit / day", signed(f.profit_per_day)) + kv("open alerts", String(alerts.length));
  $("energy").innerHTML = `<b>price ${num(e.price_per_mwh)}/MWh</b>${badge(notes && notes.price)} ·
     <b>hashprice ${num(e.hashprice_per_th_day, 4)}/TH/day</b>${badge(notes && notes.hashprice)} · over the
     ${f.metered_devices} of ${f.devices} devices that report power`;
  $("energy-racks").innerHTML = '<tr><th>rack</th><th class="num">devices</th><th class="num">TH/s</th>'
    + '<th class="num">kW</th><th class="num">J/TH</th><th class="num">metered</th><th class="num">cost/day</th>'
    + '<th class="num">revenue/day</th><th class="num">profit/day (metered)</th></tr>' +
    (e.racks.length ? e.racks.map(r => `<tr><td>${esc(r.key)}</td><td class="num">${r.devices}</td>
      <td class="num">${num(r.hashrate_ths)}</td><td class="num">${num(r.power_w / 1000)}</td>
      <td class="num">${num(r.efficiency_j_per_th)}</td><td class="num">${r.metered_devices}/${r.devices}</td>
      <td class="num">${num(r.cost_per_day)}</td><td class="num">${num(r.revenue_per_day)}</td>
      <td class="num">${signed(r.profit_per_day)}</td></tr>`).join("")
      : '<tr><td class="empty" colspan="9">no racks yet</td></tr>');
}

// ---- the device view -------------------------------------------------------------------------------
function currentDevice() {
  const m = location.hash.match(/^#\/device\/(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function drawDetail(d) {
  farm.detail = d;
  const r = d.device, rd = d.reading, id = d.identity;
  $("device-title").innerHTML = `${esc(r.host)}:${r.port} <small>${esc(r.id)}</small>`;
  $("device-kv").innerHTML = kv("state", `<span class="st-${esc(r.state)}">${esc(r.state)}</span>`)
    + kv("since", when(r.since)) + kv("model", esc(r.model)) + kv("firmware", esc(r.firmware || "–"))
    + kv("site / rack / pos", `${esc(r.site || "-")} / ${esc(r.rack || "-")} / ${esc(r.position || "-")}`)
    + kv("hashrate", `${num(r.hashrate_ths)} / ${num(r.expected_ths)} TH/s`) + kv("power", `${num(r.power_w, 0)} W`)
    + kv("efficiency", `${num(r.efficiency_j_per_th, 1)} J/TH`) + kv("chip / board °C", `${num(r.max_chip_temp_c, 0)} / ${num(r.max_board_temp_c, 0)}`)
    + kv("fans rpm", r.fans_rpm.length ? r.fans_rpm.join(" ") : "–") + kv("uptime", duration(r.uptime_s))
    + kv("pool", esc(r.pool || "–")) + kv("worker", esc(r.worker || "–")) + kv("last poll", when(r.last_poll))
    + kv("mac / hostname", `${esc(id.mac || "–")} / ${esc(id.hostname || "–")}`)
    + (r.error ? kv("error", `<span class="st-error">${esc(r.error)}</span>`) : "")
    + (r.fresh ? "" : kv("figures", '<span class="stale">the last good reading (not answering now)</span>'));
  $("boards").innerHTML = "<tr><th>board</th><th class=\"num\">TH/s</th><th class=\"num\">chips</th><th class=\"num\">chip °C</th><th class=\"num\">board °C</th></tr>"
    + (rd && rd.boards.length ? rd.boards.map(b => `<tr><td>${b.index}</td><td class="num">${num(b.hashrate_ths)}</td>
      <td class="num">${b.chips ?? "–"}/${b.expected_chips ?? "–"}</td><td class="num">${num(b.chip_temp_c, 0)}</td>
      <td class="num">${num(b.board_temp_c, 0)}</td></tr>`).join("") : '<tr><td class="empty" colspan="5">no reading</td></tr>');
  const pools = rd ? rd.pools : [];
  $("pools").innerHTML = "<tr><th>pool</th><th>url</th><th>user</th><th>status</th><th class=\"num\">accepted</th><th class=\"num\">rejected</th></tr>"
    + (pools.length ? pools.map(p => `<tr><td>${p.index}</td><td>${esc(p.url)}</td><td>${esc(p.user)}</td>
      <td>${p.active ? "active" : p.alive === false ? "dead" : "standby"}</td><td class="num">${p.accepted ?? "–"}</td>
      <td class="num">${p.rejected ?? "–"}</td></tr>`).join("") : '<tr><td class="empty" colspan="6">no pools reported</td></tr>');
  const sel = $("pool-index"), keep = sel.value;
  sel.innerHTML = pools.length ? pools.map(p => `<option value="${p.index}">pool ${p.index}: ${esc(p.url)}</option>`).join("")
    : '<option value="0">pool 0</option>';
  if (keep && [...sel.options].some(o => o.value === keep)) sel.value = keep;
  $("device-alerts").innerHTML = "<tr><th>opened</th><th>severity</th><th>kind</th><th>message</th></tr>"
    + (d.alerts.length ? d.alerts.map(a => `<tr><td>${when(a.opened_at)}</td><td class="sev-${esc(a.severity)}">${esc(a.severity)}</td>
      <td>${esc(a.kind)}</td><td>${esc(a.message)}</td></tr>`).join("") : '<tr><td class="empty" colspan="4">no open alerts</td></tr>');
  $("device-audit").innerHTML = "<tr><th>time</th><th>actor</th><th>action</th><th>params</th><th>outcome</th><th>error</th></tr>"
    + (d.audit.length ? d.audit.map(a => `<tr><td>${when(a.time)}</td><td>${esc(a.actor)}</td><td>${esc(a.action)}</td>
      <td>${esc(JSON.stringify(a.params))}</td><td>${esc(a.outcome)}</td><td>${esc(a.error || "")}</td></tr>`).join("")
      : '<tr><td class="empty" colspan="6">no actions yet</td></tr>');
}

const CHARTS = [["hashrate", "hashrate TH/s", "hashrate_ths", "#f7931a"], ["power", "power W", "power_w", "#10b981"],
                ["temp", "hottest chip °C", "max_chip_temp", "#ef4444"], ["fan", "slowest fan rpm", "min_fan_rpm", "#3a6fd8"]];

function drawCharts(rows) {
  const xs = rows.map(r => r.time);
  $("charts-note").textContent = rows.length ? `${rows.length} readings` : "no readings in this span yet";
  for (const [key, label, field, colour] of CHARTS) {
    const ys = rows.map(r => r[field]);
    if (farm.charts[key]) { farm.charts[key].setData([xs, ys]); continue; }
    const box = document.createElement("div");
    box.className = "chart"; box.innerHTML = `<h3>${esc(label)}</h3>`;
    $("charts").appendChild(box);
    farm.charts[key] = new uPlot({width: 440, height: 160, legend: {show: false},
      axes: [{stroke: "#9aa4b2", grid: {stroke: "#222a36"}}, {stroke: "#9aa4b2", grid: {stroke: "#222a36"}, size: 60}],
      series: [{}, {label, stroke: colour, width: 1.5, spanGaps: false}]}, [xs, ys], box);
  }
}

async function refreshDevice(id) {
  const span = Number($("span").value);
  const [d, hist] = await Promise.all([get(apiDev(id, "detail")),
                                       get(apiDev(id, "history") + `?since=${Date.now() / 1000 - span}`)]);
  if (currentDevice() !== id) return;
  drawDetail(d);
  drawCharts(hist);
  $("device-view").dataset.ready = id;
}
$("span").addEventListener("change", () => { const id = currentDevice(); if (id) refreshDevice(id).catch(showError); });

// ---- actions ---------------------------------------------------------------------------------------
function result(text, cls) { $("action-result").className = cls; $("action-result").textContent = text; }

async function act(action) {
  const id = currentDevice();
  if (!id) return;
  const body = {actor: "web"};
  if (action === "switch-pool") body.index = Number($("pool-index").value);
  if (action === "power") {
    const w = Number($("power-target").value);
    if (!(w > 0)) { result("power target: give watts above 0", "bad"); return; }
    body.watts = w;
  }
  const headers = {"Content-Type": "application/json"};
  if (token()) headers.Authorization = "Bearer " + token();
  result(`${action}: sending…`, "");
  let r;
  try { r = await fetch(base + apiDev(id, action), {method: "POST", headers, body: JSON.stringify(body)}); }
  catch (err) { result(`${action}: ${err.message}`, "bad"); return; }
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 || r.status === 403) {
    result(`${action} refused (${r.status}): ${data.detail || ""} Enter the farm token above, then press again.`, "bad");
    $("token").focus();
  } else if (!r.ok) {
    result(`${action} failed (${r.status}): ${typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)}`, "bad");
  } else if (data.ok === false) {
    result(`${action} failed: ${data.error} (audit #${data.audit_id})`, "bad");
  } else {
    result(`${action}: ok${data.audit_id ? ` (audit #${data.audit_id})` : ""}`, "good");
  }
  await refreshDevice(id).catch(showError);
}

const armed = new Map();
for (const btn of document.querySelectorAll("button[data-action]")) {
  const label = btn.textContent;
  btn.addEventListener("click", () => {
    if (btn.disabled) return;
    if (!armed.has(btn)) {  // the first click arms it: a reboot is not one slip of the mouse away
      btn.classList.add("armed"); btn.textContent = `confirm ${label}?`;
      armed.set(btn, setTimeout(() => { armed.delete(btn); btn.classList.remove("armed"); btn.textContent = label; }, ARM_MS));
      return;
    }
    clearTimeout(armed.get(btn)); armed.delete(btn); btn.classList.remove("armed"); btn.textContent = label;
    act(btn.dataset.action);
  });
}

// ---- routing and refresh ---------------------------------------------------------------------------
function showError(err) { setStatus("error: " + err.message, true); }

async function route() {
  clearInterval(timer);
  const id = currentDevice();
  $("fleet-view").hidden = !!id;
  $("device-view").hidden = !id;
  const tick = async () => {
    try {
      if (id) await refreshDevice(id); else await refreshFleet();
      setStatus("updated " + new Date().toLocaleTimeString(), false);
      document.body.dataset.ready = "1";
    } catch (err) { showError(err); }
  };
  if (id) { delete $("device-view").dataset.ready; result("", ""); window.scrollTo(0, 0); }
  await tick();
  timer = setInterval(tick, REFRESH_MS);
}

async function start() {
  try { farm.notes = await get("/api/notes"); } catch (err) { farm.notes = null; }
  try { farm.info = await get("/api/page"); } catch (err) { farm.info = {token_required: false, power: false}; }
  showToken();
  const power = farm.info.power;
  $("act-power").disabled = !power; $("power-target").disabled = !power;
  $("power-note").textContent = power ? "" : "power targets: not available on this server";
  window.addEventListener("hashchange", route);
  await route();
}
start();
