// The dashboard: one fetch of /dashboard/api/view per refresh, every panel drawn from it.
// Each panel ends with data-state="drawn" (it has data) or "empty" (nothing in the range);
// the page's data-loaded says a view arrived, data-error that one failed.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const panels = {};
document.querySelectorAll("[data-panel]").forEach((el) => { panels[el.dataset.panel] = el; });
const charts = {};
let timer = null;

const usd = (x) => (x === null || x === undefined) ? "-" : "$" + Number(x).toLocaleString(undefined, {minimumFractionDigits: 2, maximumFractionDigits: 4});
const pct = (x) => (x === null || x === undefined) ? "-" : (100 * x).toFixed(1) + "%";
const num = (x) => (x === null || x === undefined) ? "-" : Number(x).toLocaleString();
const text = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

function state(name, drawn, emptyMessage) {
  const panel = panels[name];
  panel.dataset.state = drawn ? "drawn" : "empty";
  const empty = panel.querySelector(".empty");
  if (empty) empty.remove();
  if (!drawn) panel.insertAdjacentHTML("beforeend", `<p class="empty">${text(emptyMessage || "Nothing in this range.")}</p>`);
}

function table(headers, rows, numeric = []) {
  const head = headers.map((h, i) => `<th class="${numeric.includes(i) ? "n" : ""}">${text(h)}</th>`).join("");
  const body = rows.map((r) => "<tr>" + r.map((c, i) => `<td class="${numeric.includes(i) ? "n" : ""}">${c}</td>`).join("") + "</tr>").join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function chart(name, series, xs, columns) {
  const el = panels[name].querySelector(".chart");
  if (charts[name]) { charts[name].destroy(); delete charts[name]; }
  el.innerHTML = "";
  if (!xs.length) return;
  const width = Math.max(320, el.clientWidth || panels[name].clientWidth - 32);
  const colours = ["#3f6fd8", "#e07b39", "#8c8c8c", "#2e9d6a", "#b03a8c"];
  const opts = {width, height: 220, series: [{}, ...series.map((label, i) => ({label, stroke: colours[i % colours.length], width: 2}))],
                axes: [{}, {size: 70}]};
  charts[name] = new uPlot(opts, [xs, ...columns], el);
}

function draw(view) {
  const ledger = view.ledger;
  const series = ledger.series;
  const xs = series.map((b) => Date.parse(b.at) / 1000);
  const any = series.some((b) => b.requests > 0 || b.idle_usd > 0);
  document.querySelectorAll(".bucket").forEach((el) => { el.textContent = ledger.bucket; });

  chart("spend", ["local", "hosted", "idle local"], xs, [series.map((b) => b.local_usd), series.map((b) => b.hosted_usd), series.map((b) => b.idle_usd)]);
  const t = ledger.totals;
  panels.spend.querySelector(".figures").innerHTML = any ? [
    ["spend", usd(t.spend_usd)], ["local", usd(t.local_usd)], ["hosted", usd(t.hosted_usd)], ["idle local", usd(t.idle_usd)],
    ["requests", num(t.requests)], ["errors", pct(t.error_rate)],
  ].map(([k, v]) => `<span class="figure">${k}<b>${v}</b></span>`).join("") : "";
  state("spend", any);

  const s = ledger.saving;
  panels.saving.querySelector(".figures").innerHTML = any ? [
    ["actual", usd(s.actual_usd)], ["all hosted at list price", usd(s.all_hosted_list_usd)], ["saved", usd(s.saving_usd)],
    ["saved share", pct(s.saving_share)],
  ].map(([k, v]) => `<span class="figure">${k}<b>${v}</b></span>`).join("") +
    (s.models_without_hosted_price.length ? `<p>Priced at their own cost (no hosted model on their route): ${s.models_without_hosted_price.map(text).join(", ")}</p>` : "") +
    (view.savings ? table(["lever", "saved", "share"], Object.entries(view.savings.by_lever).map(([lever, v]) =>
      [text(lever.replaceAll("_", " ")), usd(v.usd), pct(v.share)]), [1, 2]) : "") : "";
  state("saving", any);

  const experiments = Object.entries(view.experiments || {});
  panels.experiments.querySelector(".list").innerHTML = experiments.map(([name, e]) =>
    `<h3>${text(name)} on ${text(e.route)} (control ${text(e.control)}; sample ratio p = ${e.sample_ratio.p_value.toPrecision(3)}` +
    `${e.sample_ratio.mismatch ? " <b>MISMATCH</b>" : ""})</h3>` +
    table(["variant", "requests", "cost per request", "good share", "feedback", "cost change", "cost verdict", "quality verdict"],
      Object.entries(e.variants).map(([variant, v]) => {
        const c = e.comparisons[variant];
        return [text(variant), num(v.requests), usd(v.cost_usd.mean), pct(v.good.mean), v.feedback.mean === null ? "-" : v.feedback.mean.toFixed(2),
                c ? pct(c.cost_relative) : "control", c ? text(c.cost_verdict) : "", c ? text(c.quality_verdict) : ""];
      }), [1, 2, 3, 4, 5])).join("");
  state("experiments", experiments.length > 0, "No experiment is configured.");

  chart("tokens", ["prompt", "completion"], xs, [series.map((b) => b.prompt_tokens), series.map((b) => b.completion_tokens)]);
  state("tokens", series.some((b) => b.prompt_tokens + b.completion_tokens > 0));

  for (const by of ["team", "feature", "model", "user"]) {
    const rows = ledger.top[by] || [];
    panels["top-" + by].querySelector(".list").innerHTML = rows.length ? table([by, "cost", "requests", "tokens"],
      rows.map((r) => [text(r.name), usd(r.cost_usd), num(r.requests), num(r.tokens)]), [1, 2, 3]) : "";
    state("top-" + by, rows.length > 0);
  }

  chart("cache", ["hit rate"], xs, [series.map((b) => b.requests ? b.cache_hits / b.requests : null)]);
  const steering = Object.entries(view.cache_steering || {});
  panels.cache.querySelector(".list").innerHTML = `<p>Hit rate over the range: <b>${pct(t.cache_hit_rate)}</b></p>` + (steering.length ?
    table(["route", "threshold in force", "false-hit estimate", "95% bound", "checks", "paid checks"], steering.map(([route, st]) =>
      [text(route), st.threshold === null ? "shadow only" : st.threshold, pct(st.estimate), pct(st.bound), num(st.checks), num(st.paid_checks)]), [1, 2, 3, 4, 5])
    : "<p>No route steers a semantic threshold.</p>");
  state("cache", any);

  chart("spill", ["spilled share"], xs, [series.map((b) => b.requests ? b.spilled / b.requests : null)]);
  panels.spill.querySelector(".list").innerHTML = `<p>Spilled over the range: <b>${pct(t.spill_share)}</b></p>` +
    (ledger.spill_reasons.length ? table(["reason", "requests"], ledger.spill_reasons.map((r) => [text(r.reason), num(r.requests)]), [1]) : "");
  state("spill", any);

  const budgets = view.budgets || [];
  panels.budgets.querySelector(".list").innerHTML = budgets.length ? table(["budget", "period", "spent", "left", ""], budgets.map((b) =>
    [`${text(b.scope)} ${text(b.name)}`, text(b.period), usd(b.spent_usd) + " of " + usd(b.limit_usd), usd(b.left_usd),
     `<div class="bar"><i style="width:${Math.min(100, 100 * b.used_share).toFixed(1)}%"></i></div>`]), [2, 3]) : "";
  state("budgets", budgets.length > 0, "No budgets are configured.");

  const engines = Object.entries(view.engines || {});
  panels.engines.querySelector(".list").innerHTML = engines.length ? table(["model", "ready", "starting", "running", "waiting", "KV cache"],
    engines.map(([model, e]) => [text(model), num(e.replicas_ready), num(e.replicas_starting), num(e.running), num(e.waiting), pct(e.kv_cache_usage)]),
    [1, 2, 3, 4, 5]) : "";
  state("engines", engines.length > 0, "No local models.");

  const gpu = view.gpu || {};
  panels.gpu.querySelector(".list").innerHTML = (gpu.gpus || []).length ? table(["host", "GPU", "model", "utilisation", "memory used", "power"],
    gpu.gpus.map((g) => [text(g.host), text(g.gpu), text(g.model), pct((g.utilisation_pct ?? 0) / 100),
      g.memory_used_mib === undefined ? "-" : `${num(Math.round(g.memory_used_mib))} MiB`, g.power_w === undefined ? "-" : `${g.power_w.toFixed(0)} W`]),
    [3, 4, 5]) : "";
  state("gpu", (gpu.gpus || []).length > 0, gpu.configured ? (gpu.error || "The exporter reports no GPU.") :
    "No GPU exporter configured (monitor.gpu_metrics_url).");

  const alerts = view.alerts || [];
  panels.alerts.querySelector(".list").innerHTML = alerts.length ? table(["state", "rule", "alert", "since"], alerts.map((a) =>
    [`<span class="${a.state}">${text(a.state)}</span>`, text(a.rule), text(a.summary), text(a.started_at.replace("T", " ").slice(0, 16))])) : "";
  state("alerts", alerts.length > 0, "No alert fired in the last day.");
}

async function refresh() {
  const range = $("#range").value;
  $("#status").textContent = "loading";
  try {
    const response = await fetch(`/dashboard/api/view?range=${encodeURIComponent(range)}`, {credentials: "same-origin"});
    if (response.status === 401 || response.status === 403) { window.location.reload(); return; }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    draw(body);
    document.body.dataset.loaded = "true";
    delete document.body.dataset.error;
    $("#status").textContent = `updated ${new Date().toLocaleTimeString()} (${body.query_ms} ms)`;
  } catch (err) {
    document.body.dataset.error = String(err);
    $("#status").textContent = "failed: " + err;
  }
}

function schedule() {
  if (timer) clearInterval(timer);
  timer = $("#auto").checked ? setInterval(refresh, 30000) : null;
}

$("#range").addEventListener("change", refresh);
$("#auto").addEventListener("change", schedule);
refresh();
schedule();
