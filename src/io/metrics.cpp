#include "io/metrics.hpp"

#include <httplib.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/session/session.hpp"

namespace roam::io {
namespace {

// How long a request waits for the loop's snapshot before answering 503.
constexpr std::chrono::milliseconds kSnapshotTimeout{2000};
// HTTP worker threads: a scraper and a browser or two.
constexpr std::size_t kHttpThreads = 2;

std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) { return fmt::format("{}", v); }

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// One sample of `name` per (label value, count).
template <typename Pairs>
void labelled(std::string& out, const char* name, const char* label, const Pairs& pairs) {
  for (const auto& [value, n] : pairs)
    out += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, label_value(value), n);
}
void labelled(std::string& out, const char* name, const char* label,
              std::initializer_list<std::pair<std::string, std::uint64_t>> pairs) {
  labelled<decltype(pairs)>(out, name, label, pairs);
}

}  // namespace

std::string render_prometheus(const DaemonSnapshot& s) {
  std::string out;
  family(out, "roam_info", "gauge", "The roam daemon: its kind, version and address.");
  out += fmt::format("roam_info{{kind=\"{}\",version=\"{}\",listen=\"{}\"}} 1\n", label_value(s.kind),
                     label_value(s.version), label_value(s.listen));
  family(out, "roam_uptime_seconds", "gauge", "Seconds since the daemon started.");
  out += "roam_uptime_seconds " + number(s.uptime_s) + "\n";

  family(out, "roam_sessions", "gauge", "Live sessions by state.");
  std::map<std::string, std::uint64_t> by_state;
#define X(name, text) by_state[text] = 0;
  ROAM_SESSION_STATES(X)
#undef X
  for (const auto& x : s.sessions) ++by_state[x.state];
  labelled(out, "roam_sessions", "state", by_state);

  family(out, "roam_sessions_started_total", "counter", "Sessions created (accepted or opened).");
  out += fmt::format("roam_sessions_started_total {}\n", s.sessions_started);
  family(out, "roam_sessions_ended_total", "counter",
         "Sessions ended: clean (both directions complete) or aborted.");
  labelled(out, "roam_sessions_ended_total", "outcome",
           {{"clean", s.ended_clean}, {"aborted", s.ended_aborted}});

  family(out, "roam_handshakes_total", "counter",
         "Session handshakes: ok, or failed (the session ended before it was established).");
  labelled(out, "roam_handshakes_total", "result",
           {{"ok", s.handshakes_ok}, {"failed", s.handshakes_failed}});

  family(out, "roam_bytes_total", "counter",
         "Application bytes: sent into sessions and received from peers, live and ended sessions.");
  labelled(out, "roam_bytes_total", "direction",
           {{"sent", s.bytes_sent}, {"received", s.bytes_received}});

  family(out, "roam_retained_bytes", "gauge",
         "Unacknowledged bytes held for resume by live sessions (retention in use).");
  out += fmt::format("roam_retained_bytes {}\n", s.retained);

  family(out, "roam_migrations_total", "counter", "Sessions moved to a new path.");
  out += fmt::format("roam_migrations_total {}\n", s.migrations);

  family(out, "roam_handover_seconds", "histogram",
         "Handover latency: from the loss of the old path (or the start of a make-before-break "
         "attempt) to the adoption of the new one.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kHandoverBuckets.size(); ++i) {
    cumulative += s.handover.counts[i];
    out += fmt::format("roam_handover_seconds_bucket{{le=\"{}\"}} {}\n", number(kHandoverBuckets[i]),
                       cumulative);
  }
  cumulative += s.handover.counts.back();
  out += fmt::format("roam_handover_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
  out += "roam_handover_seconds_sum " + number(s.handover.sum) + "\n";
  out += fmt::format("roam_handover_seconds_count {}\n", s.handover.count);

  family(out, "roam_refusals_total", "counter",
         "Connections or requests refused, by reason (see docs/OPERATING.md).");
  labelled(out, "roam_refusals_total", "reason", s.refusals);
  return out;
}

MetricsServer::MetricsServer(Loop& loop) : loop_(loop), http_(std::make_unique<httplib::Server>()) {}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    http_->stop();
    thread_.join();
  }
}

core::Result<void> MetricsServer::start(const Endpoint& where) {
  http_->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  http_->set_keep_alive_max_count(100);
  auto snapshot_or_503 = [this](httplib::Response& res) -> std::optional<DaemonSnapshot> {
    auto s = snapshot_via_loop(loop_, kSnapshotTimeout);
    if (!s) {
      res.status = 503;
      res.set_content("the daemon's loop did not answer in time\n", "text/plain");
    }
    return s;
  };
  http_->Get("/metrics", [snapshot_or_503](const httplib::Request&, httplib::Response& res) {
    if (auto s = snapshot_or_503(res))
      res.set_content(render_prometheus(*s), "text/plain; version=0.0.4; charset=utf-8");
  });
  http_->Get("/status.json", [snapshot_or_503](const httplib::Request&, httplib::Response& res) {
    if (auto s = snapshot_or_503(res)) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(to_json(*s).dump(), "application/json");
    }
  });
  http_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(status_page_html(), "text/html; charset=utf-8");
  });
  const std::string host = where.host.empty() ? "127.0.0.1" : where.host;
  int port = where.port;
  if (port == 0) {
    port = http_->bind_to_any_port(host);
    if (port <= 0) return core::fail(core::Errc::kLimit, "--metrics: cannot bind " + host);
  } else if (!http_->bind_to_port(host, port)) {
    return core::fail(core::Errc::kLimit, "--metrics: cannot bind " + where.str());
  }
  Endpoint b{host, static_cast<std::uint16_t>(port)};
  bound_ = b.str();
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return {};
}

const std::string& status_page_html() {
  static const std::string kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>roam status</title>
<style>
:root { --fg:#1d2430; --muted:#6b7585; --line:#dde2ea; --head:#263445; --accent:#2f7dd1;
        --ok:#2e9d5b; --wait:#d9822b; --bad:#c23b3b; --bg:#f5f7fa; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:var(--head); color:#fff; padding:12px 20px; display:flex; align-items:baseline; gap:16px; flex-wrap:wrap; }
header h1 { font-size:18px; margin:0; letter-spacing:.5px; }
header .meta { color:#c8d2df; font-size:13px; }
header .live { margin-left:auto; font-size:12px; color:#c8d2df; }
header .live b { display:inline-block; width:8px; height:8px; border-radius:50%; background:var(--ok); margin-right:6px; }
header .live.stale b { background:var(--bad); }
main { padding:16px 20px; max-width:1400px; }
.tiles { display:flex; flex-wrap:wrap; gap:10px; margin-bottom:16px; }
.tile { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:120px; }
.tile .v { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
.tile .k { font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.6px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px; margin-bottom:16px; overflow-x:auto; }
section h2 { font-size:13px; margin:0; padding:8px 12px; background:#eef1f5; border-bottom:1px solid var(--line);
             text-transform:uppercase; letter-spacing:.6px; color:#3b4757; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:5px 8px; text-align:left; border-bottom:1px solid var(--line); white-space:nowrap; }
th { font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.5px; font-weight:600; }
td.n, th.n { text-align:right; }
td.id { font-family:ui-monospace,Menlo,Consolas,monospace; }
tr:last-child td { border-bottom:none; }
.state { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; background:var(--muted); }
.state.established { background:var(--ok); } .state.wait { background:var(--wait); }
.state.migrating, .state.handshake { background:var(--accent); } .state.closed { background:#8a94a3; }
.empty { padding:12px; color:var(--muted); }
#chart { display:block; width:100%; height:240px; }
#chart .axis { stroke:#9aa5b4; stroke-width:1; } #chart .grid { stroke:#eef1f5; stroke-width:1; }
#chart text { font-size:11px; fill:var(--muted); }
#chart .bar { fill:var(--accent); } #chart .bar.slow { fill:var(--wait); }
.cols { display:grid; grid-template-columns: 2fr 1fr; gap:16px; }
@media (max-width:900px) { .cols { grid-template-columns:1fr; } }
</style></head>
<body>
<header><h1>roam</h1><span class="meta" id="meta">connecting…</span><span class="live" id="live"><b></b>live</span></header>
<main>
<div class="tiles" id="tiles"></div>
<section><h2>Sessions</h2><div id="sessions"><div class="empty">loading…</div></div></section>
<div class="cols">
<section><h2>Recent handover latency</h2><svg id="chart" role="img" aria-label="recent handover latencies"></svg></section>
<section><h2>Refusals</h2><div id="refusals"><div class="empty">none</div></div></section>
</div>
</main>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function sv(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function bytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"]; let v = n / 1024, i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return v.toFixed(1) + " " + u[i];
}
function dur(s) {
  if (s < 0) return "-";
  if (s < 0.01) return (s * 1000).toFixed(1) + " ms";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return s.toFixed(1) + " s";
  const w = Math.floor(s);
  if (w < 3600) return Math.floor(w / 60) + "m" + String(w % 60).padStart(2, "0") + "s";
  return Math.floor(w / 3600) + "h" + String(Math.floor(w % 3600 / 60)).padStart(2, "0") + "m";
}
function stateClass(s) {
  for (const k of ["established", "wait", "migrating", "handshake", "closed"]) if (s.includes(k)) return k;
  return "";
}
function tiles(d) {
  const t = document.getElementById("tiles"); t.replaceChildren();
  let refused = 0; for (const k in d.refusals) refused += d.refusals[k];
  const items = [["sessions", d.sessions.length], ["migrations", d.migrations],
    ["handshakes ok", d.handshakes_ok], ["handshakes failed", d.handshakes_failed], ["refused", refused],
    ["sent", bytes(d.bytes_sent)], ["received", bytes(d.bytes_received)], ["retained", bytes(d.retained)]];
  for (const [k, v] of items) {
    const e = el("div", {class: "tile", "data-key": k});
    e.append(el("div", {class: "v"}, String(v)), el("div", {class: "k"}, k));
    t.append(e);
  }
}
function sessions(d) {
  const box = document.getElementById("sessions"); box.replaceChildren();
  if (!d.sessions.length) { box.append(el("div", {class: "empty"}, "no sessions")); return; }
  const tb = el("table", {id: "session-table"}), hr = el("tr");
  const cols = [["id"], ["role"], ["peer"], ["path (local → remote)"], ["state"], ["sent", 1], ["received", 1],
                ["retained", 1], ["migrations", 1], ["last handover", 1], ["waited", 1], ["age", 1]];
  for (const [c, n] of cols) hr.append(el("th", n ? {class: "n"} : {}, c));
  tb.append(hr);
  for (const s of d.sessions) {
    const tr = el("tr", {class: "session", "data-id": s.id});
    const st = el("td"); st.append(el("span", {class: "state " + stateClass(s.state)}, s.state));
    tr.append(el("td", {class: "id"}, s.id), el("td", {}, s.role), el("td", {}, s.peer || "-"),
              el("td", {}, s.local ? s.local + " → " + s.remote : "-"), st,
              el("td", {class: "n"}, bytes(s.bytes_sent)), el("td", {class: "n"}, bytes(s.bytes_received)),
              el("td", {class: "n"}, bytes(s.retained)), el("td", {class: "n migrations"}, String(s.migrations)),
              el("td", {class: "n"}, dur(s.last_handover_s)),
              el("td", {class: "n"}, s.waited_total_s > 0 ? dur(s.waited_total_s) : "-"),
              el("td", {class: "n"}, dur(s.age_s)));
    tb.append(tr);
  }
  box.append(tb);
}
function chart(d) {
  const svg = document.getElementById("chart"); svg.replaceChildren();
  const W = svg.clientWidth || 800, H = svg.clientHeight || 240, L = 56, R = 12, T = 14, B = 28;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const pts = d.recent_handovers.slice(-60);
  svg.setAttribute("data-points", String(pts.length));
  let max = 0.01; for (const p of pts) max = Math.max(max, p.seconds);
  const steps = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];
  let top = steps.find(s => s >= max) || max;
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4, y = H - B - (H - B - T) * i / 4;
    svg.append(sv("line", {class: "grid", x1: L, x2: W - R, y1: y, y2: y}));
    svg.append(sv("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, i ? dur(v) : "0"));
  }
  svg.append(sv("line", {class: "axis", x1: L, x2: L, y1: T, y2: H - B}));
  svg.append(sv("line", {class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B}));
  if (!pts.length) {
    svg.append(sv("text", {x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle"}, "no migrations yet"));
    return;
  }
  const slot = (W - L - R) / Math.max(pts.length, 20), bw = Math.max(2, Math.min(24, slot * 0.7));
  pts.forEach((p, i) => {
    const h = Math.max(1.5, (H - B - T) * Math.min(p.seconds, top) / top);
    const x = L + slot * i + (slot - bw) / 2;
    const r = sv("rect", {class: "bar" + (p.seconds >= 1 ? " slow" : ""), x: x, y: H - B - h, width: bw, height: h});
    r.append(sv("title", {}, p.id + ": " + dur(p.seconds) + " at " + new Date(p.unix_time * 1000).toLocaleTimeString()));
    svg.append(r);
  });
  const first = new Date(pts[0].unix_time * 1000).toLocaleTimeString();
  const last = new Date(pts[pts.length - 1].unix_time * 1000).toLocaleTimeString();
  svg.append(sv("text", {x: L, y: H - 8}, first));
  svg.append(sv("text", {x: W - R, y: H - 8, "text-anchor": "end"}, last + " (latest " + pts.length + ")"));
}
function refusals(d) {
  const box = document.getElementById("refusals"); box.replaceChildren();
  const keys = Object.keys(d.refusals);
  if (!keys.length) { box.append(el("div", {class: "empty"}, "none")); return; }
  const tb = el("table", {id: "refusal-table"}), hr = el("tr");
  hr.append(el("th", {}, "reason"), el("th", {class: "n"}, "count")); tb.append(hr);
  for (const k of keys) { const tr = el("tr"); tr.append(el("td", {}, k), el("td", {class: "n"}, String(d.refusals[k]))); tb.append(tr); }
  box.append(tb);
}
async function refresh() {
  const live = document.getElementById("live");
  try {
    const r = await fetch("status.json", {cache: "no-store"});
    if (!r.ok) throw new Error(r.status);
    const d = await r.json();
    document.title = "roam " + d.kind + " — " + d.sessions.length + " session" + (d.sessions.length == 1 ? "" : "s");
    document.getElementById("meta").textContent =
      "roam " + d.kind + " " + d.version + " · pid " + d.pid + " · " + (d.listen || "-") + " · up " + dur(d.uptime_s);
    tiles(d); sessions(d); chart(d); refusals(d);
    live.className = "live"; document.body.setAttribute("data-updated", String(d.unix_time));
  } catch (e) {
    live.className = "live stale";
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
)HTML";
  return kPage;
}

}  // namespace roam::io
