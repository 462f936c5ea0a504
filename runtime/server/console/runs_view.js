// The runs view: sessions running now, past sessions and sweeps from the lake, and a form to start a
// session; and the sweep view: pass rates per grid cell, failing samples linked to their timelines.

import { api } from "./api.js";
import { fill, formatMs, formatTime, h, slug } from "./dom.js";
import { preview } from "./session_model.js";

function sessionLink(id) {
  return h("a", { href: `#/session/${encodeURIComponent(id)}`, class: "session-link", "data-session": id }, id);
}

function statusBadge(status) {
  return h("span", { class: `badge status-${slug(status || "unknown")}` }, status || "?");
}

function table(columns, rows, { empty = "none", cls = "" } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", { class: `list ${cls}` },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

function newSessionForm(teams, onError) {
  const select = h("select", { name: "team", required: true },
    teams.filter((t) => t.name).map((t) => h("option", { value: t.path }, `${t.name} (${t.agents.length} agents)`)));
  const input = h("input", { name: "input", placeholder: "what should the team do?", required: true, autocomplete: "off" });
  const tokens = h("input", { type: "checkbox", name: "stream_tokens", checked: true });
  return h("form", { class: "new-session", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const info = await api("/sessions", { method: "POST",
        body: { team: select.value, input: input.value, stream_tokens: tokens.checked } });
      location.hash = `#/session/${encodeURIComponent(info.id)}`;
    } catch (err) {
      onError(`could not start: ${err.message}`);
    }
  } }, h("label", {}, "Team ", select), h("label", { class: "grow" }, "Input ", input),
  h("label", {}, tokens, " stream tokens"), h("button", { type: "submit" }, "Start session"));
}

export async function showRuns(root) {
  const flash = h("div", { class: "flash" });
  const onError = (text) => { flash.textContent = text; };
  fill(root, h("section", { class: "runs" }, h("h2", {}, "Runs"), flash, h("p", { class: "muted" }, "loading…")));
  let [sessions, runs, teams] = await Promise.all([
    api("/sessions?limit=200").catch((e) => { onError(e.message); return []; }),
    api("/runs?limit=200").catch(() => null),
    api("/teams").catch(() => []),
  ]);
  const live = sessions.filter((s) => s.live || s.status === "running");
  if (runs === null) {  // no runs route: the finished sessions the session list knows of
    runs = sessions.filter((s) => !live.includes(s)).map((s) => ({ kind: "session", session_id: s.id, run_id: s.run_id,
      team: s.team, user: s.user, status: s.status, started_at: s.created_at, reply: s.result && s.result.output }));
  }
  const liveRows = live.map((s) => h("tr", { "data-session": s.id },
    h("td", {}, sessionLink(s.id)), h("td", {}, s.team), h("td", {}, s.user || ""), h("td", {}, statusBadge(s.status)),
    h("td", {}, formatTime(s.created_at)), h("td", {}, String(s.turns ?? ""))));
  const pastRows = runs.map((r) => {
    const sweep = r.kind === "sweep";
    const link = sweep ? h("a", { href: `#/sweep/${encodeURIComponent(r.run_id)}`, class: "sweep-link", "data-run": r.run_id }, r.run_id)
                       : sessionLink(r.session_id);
    const took = r.started_at && r.finished_at ? Date.parse(r.finished_at) - Date.parse(r.started_at) : null;
    return h("tr", { "data-kind": r.kind || "session", "data-session": sweep ? null : r.session_id },
      h("td", {}, r.kind || "session"), h("td", {}, link), h("td", {}, r.team || ""), h("td", {}, r.user || ""),
      h("td", {}, statusBadge(r.status)), h("td", {}, formatTime(r.started_at)), h("td", {}, formatMs(took)),
      h("td", { class: "muted" }, preview(r.reply || r.error || "", 80)));
  });
  fill(root, h("section", { class: "runs" },
    h("h2", {}, "Runs"), flash,
    teams.length ? newSessionForm(teams, onError) : null,
    h("h3", {}, `Live sessions (${live.length})`),
    table(["session", "team", "user", "status", "created", "turns"], liveRows, { empty: "no session is running", cls: "live" }),
    h("h3", {}, `Past runs (${runs.length})`),
    table(["kind", "run", "team", "user", "status", "started", "took", "outcome"], pastRows,
          { empty: "nothing in the lake yet", cls: "past" })));
}

// Accepts the results of a sweep as a list of cells, each with a pass rate (or passed/total) and
// failing samples that name their session.
function cellsOf(results) {
  const cells = Array.isArray(results) ? results : (results.cells || results.by_cell || []);
  return cells.map((c) => {
    const total = c.total ?? c.samples ?? c.n ?? null;
    const passed = c.passed ?? (c.pass_rate !== undefined && total !== null ? Math.round(c.pass_rate * total) : null);
    const rate = c.pass_rate ?? (total ? passed / total : null);
    const name = c.cell ?? c.name ?? (c.params ? JSON.stringify(c.params) : JSON.stringify(c.overrides || {}));
    const failing = c.failing || c.failures || c.failed_samples || [];
    return { name: typeof name === "string" ? name : JSON.stringify(name), rate, passed, total, failing };
  });
}

export async function showSweep(root, runId) {
  fill(root, h("section", { class: "sweep" }, h("h2", {}, `Sweep ${runId}`), h("p", { class: "muted" }, "loading…")));
  let results;
  try {
    results = await api(`/evals/${encodeURIComponent(runId)}/results`);
  } catch (e) {
    fill(root, h("section", { class: "sweep" }, h("a", { href: "#/runs", class: "back" }, "← runs"),
      h("h2", {}, `Sweep ${runId}`), h("div", { class: "flash" }, e.message)));
    return;
  }
  const rows = cellsOf(results).map((c) => h("tr", { class: "cell" },
    h("td", {}, c.name),
    h("td", {}, c.rate === null ? "?" : h("span", { class: "rate" },
      h("span", { class: "bar", style: { width: `${Math.round(c.rate * 100)}%` } }),
      h("span", { class: "pct" }, `${(c.rate * 100).toFixed(1)}%`))),
    h("td", {}, c.total === null ? "" : `${c.passed}/${c.total}`),
    h("td", {}, c.failing.length ? h("ul", { class: "failing" }, c.failing.map((s) => h("li", {},
      s.session_id ? sessionLink(s.session_id) : h("span", {}, s.sample_id || s.id || "?"),
      h("span", { class: "muted" }, ` ${s.sample_id || s.id || ""} ${preview(s.error || s.reason || s.output || "", 100)}`))))
      : h("span", { class: "muted" }, "none"))));
  fill(root, h("section", { class: "sweep" }, h("a", { href: "#/runs", class: "back" }, "← runs"),
    h("h2", {}, `Sweep ${runId}`),
    results.status ? h("p", {}, statusBadge(results.status)) : null,
    table(["cell", "pass rate", "passed", "failing samples"], rows, { empty: "no results yet", cls: "cells" })));
}
