# ruff: noqa: E501  (HTML, CSS and JavaScript in one string)
"""The live page of a session: one self-contained HTML document (inline CSS, JS, SVG).

It fetches nothing from the internet: every 2 s it asks the server for
``live.json`` (the trials told since its last look, the pending ones, the
status and the latest fit's thresholds) and redraws. A token given in the
page's address (``?token=...``) is sent along as a Bearer header.
"""

__all__ = ["LIVE_PAGE"]

LIVE_PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>psyphy_numpyro live</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --mute:#6b7280; --line:#e3e6eb;
          --ok:#0f8b8d; --bad:#e4572e; --pend:#8d99ae; --ell:#3a3fbd; --region:#b7791f; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 22px 6px; }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  header .sub { color:var(--mute); font-size:13px; }
  #conn { margin-left:auto; font-size:12px; color:var(--mute); }
  #conn.err { color:var(--bad); font-weight:600; }
  .stats { display:flex; flex-wrap:wrap; gap:10px; padding:6px 22px 12px; }
  .stat { background:var(--card); border:1px solid var(--line); border-radius:10px;
          padding:8px 14px; min-width:110px; }
  .stat .k { font-size:11px; text-transform:uppercase; letter-spacing:.06em; color:var(--mute); }
  .stat .v { font-size:22px; font-weight:600; font-variant-numeric:tabular-nums; }
  .pill { display:inline-block; padding:1px 9px; border-radius:999px; font-size:15px;
          font-weight:600; background:#eef0f3; }
  .pill.running { background:#fff1d6; color:#9a5b00; }
  .pill.failed { background:#fde2dc; color:#b3261e; }
  .pill.not_due, .pill.due { background:#e3f4f4; color:#0b6b6d; }
  main { display:grid; grid-template-columns: minmax(420px, 1fr) 420px; gap:14px;
         padding:0 22px 22px; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:12px;
          padding:12px 14px; }
  .card h2 { font-size:13px; margin:0 0 8px; color:var(--mute); font-weight:600;
             text-transform:uppercase; letter-spacing:.05em; }
  svg { width:100%; height:auto; display:block; }
  #plane { max-height: calc(100vh - 215px); margin: 0 auto; }
  .legend { display:flex; gap:14px; flex-wrap:wrap; font-size:12px; color:var(--mute);
            margin-top:6px; }
  .sw { display:inline-block; width:12px; height:12px; border-radius:3px; margin-right:5px;
        vertical-align:-2px; }
  table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums;
          font-size:12.5px; }
  th, td { padding:3px 6px; text-align:right; border-bottom:1px solid var(--line); }
  th { color:var(--mute); font-weight:600; }
  td .ci { color:var(--mute); font-size:11.5px; white-space:nowrap; }
  .note { color:var(--mute); font-size:12px; margin-top:8px; }
  dl { display:grid; grid-template-columns:auto 1fr; gap:2px 12px; margin:0; font-size:13px; }
  dt { color:var(--mute); }
  dd { margin:0; font-variant-numeric:tabular-nums; }
  .tablewrap { max-height:330px; overflow:auto; }
</style>
</head>
<body>
<header>
  <h1 id="name">session</h1>
  <span class="sub" id="file"></span>
  <span id="conn">connecting&hellip;</span>
</header>
<section class="stats">
  <div class="stat"><div class="k">told</div><div class="v" id="told">&ndash;</div></div>
  <div class="stat"><div class="k">pending</div><div class="v" id="pending">&ndash;</div></div>
  <div class="stat"><div class="k">% correct</div><div class="v" id="pc">&ndash;</div></div>
  <div class="stat"><div class="k">fits</div><div class="v" id="fits">&ndash;</div></div>
  <div class="stat"><div class="k">refit</div>
    <div class="v"><span class="pill" id="refit-state">&ndash;</span></div></div>
  <div class="stat"><div class="k">next refit at</div><div class="v" id="next-refit">&ndash;</div></div>
</section>
<main>
  <div class="card">
    <h2 id="plane-title">Stimulus plane</h2>
    <svg id="plane" viewBox="0 0 640 640" role="img" aria-label="trials and thresholds"></svg>
    <div class="legend">
      <span><span class="sw" style="background:var(--ok)"></span>correct (reference &rarr; comparison)</span>
      <span><span class="sw" style="background:var(--bad)"></span>wrong</span>
      <span><span class="sw" style="background:var(--pend)"></span>pending</span>
      <span><span class="sw" style="background:var(--ell)"></span>threshold contour, band: <span id="level">90%</span> interval</span>
      <span id="region-legend" style="display:none"><span class="sw" style="background:var(--region)"></span>region of interest</span>
    </div>
    <div class="note" id="plane-note"></div>
  </div>
  <div>
    <div class="card">
      <h2>Refits</h2>
      <dl>
        <dt>latest fit</dt><dd id="latest-fit">none yet</dd>
        <dt>last refit</dt><dd id="last-refit">&ndash;</dd>
        <dt>thresholds</dt><dd id="th-state">&ndash;</dd>
        <dt>settings</dt><dd id="settings">&ndash;</dd>
      </dl>
    </div>
    <div class="card" style="margin-top:14px">
      <h2>Thresholds of fit <span id="th-fit">&ndash;</span></h2>
      <div class="tablewrap"><table id="th-table"><tbody>
        <tr><td style="text-align:left;color:var(--mute)">after the first refit</td></tr>
      </tbody></table></div>
      <div class="note" id="th-note"></div>
    </div>
  </div>
</main>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const base = location.pathname.replace(/\/live\/?$/, "");
const SVGNS = "http://www.w3.org/2000/svg";
const W = 640, PADL = 62, PADR = 14, PADT = 14, PADB = 50;
let told = [], dim = 2, lastThFit = null, busy = false;
// the plane in the session's units (live.json's "plane": the space's bounds, else [-1, 1])
let plane = {lo: [-1, -1], hi: [1, 1], axis_labels: ["x0", "x1"], units: "model"};
let X0 = -1, X1 = 1, Y0 = -1, Y1 = 1, KX = 1, KY = 1, OX = 0, OY = 0;

function setPlane(p) {
  if (p) plane = p;
  const lo = plane.lo, hi = plane.hi;
  X0 = lo[0]; X1 = hi[0];
  [Y0, Y1] = dim >= 2 ? [lo[1], hi[1]] : [-1, 1];
  const w = W - PADL - PADR, h = W - PADT - PADB;
  KX = w / (X1 - X0); KY = h / (Y1 - Y0);
  if (dim >= 2) { KX = KY = Math.min(KX, KY); }  // one scale: ellipses keep their shape
  OX = PADL + (w - KX * (X1 - X0)) / 2; OY = PADT + (h - KY * (Y1 - Y0)) / 2;
}
function sx(v) { return OX + (v - X0) * KX; }
function sy(v) { return OY + (Y1 - v) * KY; }
function ticks(a, b) {  // "nice" ticks over [a, b]
  const raw = (b - a) / 5, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw * 0.999);
  const out = [];
  for (let t = Math.ceil(a / step - 1e-9) * step; t <= b + step * 1e-9; t += step) out.push(t);
  const dig = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (step / mag % 1 ? 1 : 0));
  return out.map(t => [t, Math.abs(t) < step * 1e-9 ? (0).toFixed(dig) : t.toFixed(dig)]);
}
function isModel() { return plane.units === "model"; }
function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function fmt(v, d) { return v === null || v === undefined ? "\u2013" : Number(v).toFixed(d); }
function sig(v, n) {  // n significant digits (threshold lengths in any units)
  if (v === null || v === undefined) return "\u2013";
  const x = Number(v);
  return x === 0 ? "0" : Math.abs(x) >= 1e-4 && Math.abs(x) < 1e5
    ? Number(x.toPrecision(n)).toString() : x.toExponential(n - 1);
}
function refDigits() { return Math.max(2, Math.ceil(-Math.log10((X1 - X0) / 50))); }
function xy(p) { return dim === 1 ? [p[0], 0] : [p[0], p[1]]; }

function drawFrame(svg) {
  svg.textContent = "";
  const l = sx(X0), r = sx(X1), t = sy(Y1), b = sy(Y0);
  const clip = el("clipPath", {id: "frame"}, el("defs", {}, svg));
  el("rect", {x: l, y: t, width: r - l, height: b - t}, clip);  // contours stay inside
  el("rect", {x: l, y: t, width: r - l, height: b - t, fill: "#fbfcfd", stroke: "#d5d9e0"}, svg);
  for (const [v, s] of ticks(X0, X1)) {
    el("line", {x1: sx(v), x2: sx(v), y1: t, y2: b, stroke: "#eceff3"}, svg);
    el("text", {x: sx(v), y: b + 15, "text-anchor": "middle", "font-size": 11,
                fill: "#8a93a3"}, svg).textContent = s;
  }
  if (dim >= 2) {
    for (const [v, s] of ticks(Y0, Y1)) {
      el("line", {y1: sy(v), y2: sy(v), x1: l, x2: r, stroke: "#eceff3"}, svg);
      el("text", {x: l - 6, y: sy(v) + 4, "text-anchor": "end", "font-size": 11,
                  fill: "#8a93a3"}, svg).textContent = s;
    }
  }
  const lab = plane.axis_labels || [];
  el("text", {x: (l + r) / 2, y: b + 36, "text-anchor": "middle", "font-size": 13,
              fill: "#4b5563", id: "xlabel"}, svg).textContent = lab[0] || "";
  if (dim >= 2) {
    el("text", {x: 16, y: (t + b) / 2, "text-anchor": "middle", "font-size": 13,
                fill: "#4b5563", id: "ylabel", transform: `rotate(-90 16 ${(t + b) / 2})`},
       svg).textContent = lab[1] || "";
  }
}

function drawTrials(svg, pending) {
  const seg = {1: [], 0: []}, dots = {1: [], 0: []};
  for (const t of told) {
    const r = xy(t[0]), c = xy(t[1]);
    seg[t[2]].push(`M${sx(r[0]).toFixed(1)},${sy(r[1]).toFixed(1)}L${sx(c[0]).toFixed(1)},${sy(c[1]).toFixed(1)}`);
    dots[t[2]].push(`M${sx(c[0]).toFixed(1)},${sy(c[1]).toFixed(1)}h0`);
  }
  const g = el("g", {id: "trials"}, svg);
  const op = told.length > 1500 ? 0.35 : 0.6;
  el("path", {d: seg[1].join(""), stroke: "var(--ok)", "stroke-width": 1, opacity: op}, g);
  el("path", {d: seg[0].join(""), stroke: "var(--bad)", "stroke-width": 1, opacity: op}, g);
  el("path", {d: dots[1].join(""), stroke: "var(--ok)", "stroke-width": 3.2,
              "stroke-linecap": "round"}, g);
  el("path", {d: dots[0].join(""), stroke: "var(--bad)", "stroke-width": 3.2,
              "stroke-linecap": "round"}, g);
  for (const p of pending) {
    const r = xy(p[1]), c = xy(p[2]);
    el("line", {x1: sx(r[0]), y1: sy(r[1]), x2: sx(c[0]), y2: sy(c[1]),
                stroke: "var(--pend)", "stroke-dasharray": "3 2"}, g);
    el("circle", {cx: sx(c[0]), cy: sy(c[1]), r: 3.5, fill: "none", stroke: "var(--pend)",
                  "stroke-width": 1.5}, g);
  }
}

function drawRegion(svg, region) {  // the session's region (its units, as the plane's)
  const leg = document.getElementById("region-legend");
  leg.style.display = region ? "" : "none";
  if (!region) return;
  const g = el("g", {id: "region", "clip-path": "url(#frame)"}, svg);
  if (region.box) {
    const lo = xy(region.box[0]), hi = xy(region.box[1]);
    const [y0, y1] = dim === 1 ? [Y0, Y1] : [lo[1], hi[1]];
    el("rect", {x: sx(lo[0]), y: sy(y1), width: sx(hi[0]) - sx(lo[0]), height: sy(y0) - sy(y1),
                fill: "var(--region)", "fill-opacity": 0.07, stroke: "var(--region)",
                "stroke-width": 1.5, "stroke-dasharray": "6 4"}, g);
  } else if (region.points) {
    for (const p of region.points) {
      const q = xy(p);
      el("rect", {x: sx(q[0]) - 7, y: sy(q[1]) - 7, width: 14, height: 14, fill: "none",
                  stroke: "var(--region)", "stroke-width": 2.2}, g);
    }
  }
}

function regionText(region) {
  if (!region) return "the whole domain";
  if (region.points) return `${region.points.length} reference points`;
  const f = v => sig(v, 3);
  return "box " + region.box[0].map((v, k) => `${f(v)}\u2013${f(region.box[1][k])}`).join(" \u00d7 ");
}

function ring(points) {
  return points.filter(p => p && p[0] !== null && p[1] !== null)
    .map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("") + "Z";
}

function drawThresholds(svg, th) {
  if (!th || !th.refs || dim !== 2) return;
  const g = el("g", {id: "ellipses", "clip-path": "url(#frame)"}, svg);
  th.refs.forEach((r, i) => {
    if (th.lower_points && th.upper_points) {
      el("path", {d: ring(th.upper_points[i]) + ring(th.lower_points[i]), "fill-rule": "evenodd",
                  fill: "var(--ell)", "fill-opacity": 0.13, stroke: "none"}, g);
    }
    const E = th.ellipses[i];
    if (E && E[0][0] !== null) {
      const a = E[0][0], b = E[0][1], d = E[1][1];
      const tr = (a + d) / 2, det = Math.sqrt(Math.max(((a - d) / 2) ** 2 + b * b, 0));
      const l1 = tr + det, l2 = Math.max(tr - det, 0);
      const ang = 0.5 * Math.atan2(2 * b, a - d);
      const pts = [];
      for (let k = 0; k <= 72; k++) {
        const t = 2 * Math.PI * k / 72;
        const u = Math.sqrt(l1) * Math.cos(t), v = Math.sqrt(l2) * Math.sin(t);
        pts.push([r[0] + u * Math.cos(ang) - v * Math.sin(ang),
                  r[1] + u * Math.sin(ang) + v * Math.cos(ang)]);
      }
      el("path", {d: ring(pts), fill: "none", stroke: "var(--ell)", "stroke-width": 1.8}, g);
    }
    el("circle", {cx: sx(r[0]), cy: sy(r[1]), r: 2.2, fill: "var(--ell)"}, g);
  });
}

function thresholdTable(th) {
  const tb = document.querySelector("#th-table tbody");
  const cols = th.columns, rows = th.table;
  const want = dim === 1 ? ["lower", "upper"]
             : dim === 2 ? ["semi_major", "semi_minor", "angle_deg"] : ["axis_1", "axis_2", "axis_3"];
  const refCols = cols.filter(c => c.startsWith("ref_"));
  const lab = plane.axis_labels || [];
  let html = "<tr>" + refCols.map((c, k) => `<th>${isModel() ? c.slice(4) : (lab[k] || c.slice(4))}</th>`).join("") +
             want.map(c => `<th>${c.replace("_deg", " (\u00b0)").replace("_", " ")}</th>`).join("") + "</tr>";
  for (const row of rows) {
    const rd = refDigits();
    html += "<tr>" + refCols.map(c => `<td>${fmt(row[cols.indexOf(c)], rd)}</td>`).join("");
    for (const c of want) {
      const v = row[cols.indexOf(c)], lo = cols.indexOf(c + "_lo"), hi = cols.indexOf(c + "_hi");
      const f = c === "angle_deg" ? (x => fmt(x, 0)) : (x => sig(x, 3));
      html += `<td>${f(v)}` + (lo >= 0 ? `<div class="ci">${f(row[lo])}\u2013${f(row[hi])}</div>` : "") + "</td>";
    }
    html += "</tr>";
  }
  tb.innerHTML = html;
  document.getElementById("th-fit").textContent = th.fit;
  document.getElementById("level").textContent = th.level ? Math.round(th.level * 100) + "%" : "\u2013";
  document.getElementById("th-note").textContent =
    `p(correct) = ${fmt(th.target, 3)} contours at ${th.refs.length} references, ` +
    (isModel() ? `in the model's coordinates [-1, 1]` + (dim > 1 ? "\u00b2" : "")
     : `in ${unitsText()}`) +
    (th.level ? `; under each value its ${Math.round(th.level * 100)}% interval` : "");
}

function unitsText() {
  const lab = (plane.axis_labels || []).slice(0, Math.max(dim, 1)).join(", ");
  return isModel() ? `the model's coordinates [-1, 1]` + (dim > 1 ? "\u00b2" : "")
    : `the session's units: ${plane.units}` + (lab && lab !== plane.units ? ` (${lab})` : "");
}

function show(s) {
  dim = s.input_dim;
  setPlane(s.plane);
  document.getElementById("name").textContent = s.session;
  document.getElementById("file").textContent = s.file;
  document.getElementById("told").textContent = s.told;
  document.getElementById("pending").textContent = s.pending;
  document.getElementById("fits").textContent = s.fits;
  const nc = told.reduce((a, t) => a + t[2], 0);
  document.getElementById("pc").textContent = told.length ? (100 * nc / told.length).toFixed(1) : "\u2013";
  const rs = document.getElementById("refit-state");
  rs.textContent = s.refit.state.replace("_", " ");
  rs.className = "pill " + s.refit.state;
  document.getElementById("next-refit").textContent = s.next_refit_at;
  const lf = s.latest_fit;
  document.getElementById("latest-fit").textContent =
    lf ? `fit ${lf.fit}, ${lf.num_trials} trials` + (lf.written ? `, ${lf.written.replace("T", " ").replace("+00:00", " UTC")}` : "") : "none yet";
  const lr = s.last_refit;
  document.getElementById("last-refit").textContent = lr ?
    lr.state + (lr.seconds !== undefined ? ` in ${fmt(lr.seconds, 1)} s` : "") +
    (lr.num_trials !== undefined ? ` (${lr.num_trials} trials)` : "") + (lr.error ? `: ${lr.error}` : "") : "\u2013";
  document.getElementById("th-state").textContent = s.thresholds;
  document.getElementById("settings").textContent =
    `${s.input_dim}-D, seed ${s.seed}, ${s.num_initial} initial, refit every ${s.refit_every}` +
    `; region: ${regionText(s.region)}`;
  const lab = plane.axis_labels || [];
  document.getElementById("plane-title").textContent = isModel()
    ? (dim === 1 ? "Stimulus axis (model coordinates)" : dim === 2
       ? "Stimulus plane (model coordinates)" : "Stimulus space, x-y projection (model coordinates)")
    : (dim === 1 ? `Stimulus axis (${lab[0]})` : dim === 2 ? `Stimulus plane (${lab[0]}, ${lab[1]})`
       : `Stimulus space, ${lab[0]}\u2013${lab[1]} projection`);
  document.getElementById("plane-note").textContent = "Stimuli and threshold contours in " +
    unitsText() + (isModel() ? "" : `; bounds ${plane.lo.map((v, k) => `${lab[k]} ${v}\u2013${plane.hi[k]}`).join(", ")}`);
  const svg = document.getElementById("plane");
  drawFrame(svg);
  drawTrials(svg, s.pending_trials);
  drawRegion(svg, s.region);
  drawThresholds(svg, s.threshold_readout);
  if (s.threshold_readout && s.threshold_readout.table && s.threshold_readout.fit !== lastThFit) {
    lastThFit = s.threshold_readout.fit;
    thresholdTable(s.threshold_readout);
  }
}

async function poll() {
  if (busy) return;
  busy = true;
  const conn = document.getElementById("conn");
  try {
    const headers = token ? {Authorization: "Bearer " + token} : {};
    const r = await fetch(`${base}/live.json?since=${told.length}`, {headers, cache: "no-store"});
    const s = await r.json();
    if (!r.ok) throw new Error(s.error || r.statusText);
    if (s.since !== told.length) { told = []; return; }  // the server started afresh
    told = told.concat(s.told_trials);
    show(s);
    conn.textContent = "updated " + new Date().toLocaleTimeString();
    conn.className = "";
  } catch (e) {
    conn.textContent = "no connection: " + e.message;
    conn.className = "err";
  } finally {
    busy = false;
  }
}
poll();
setInterval(poll, 2000);
</script>
</body>
</html>
"""
