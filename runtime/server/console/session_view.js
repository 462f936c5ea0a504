// The session view: agents as lanes (a column each, with its state and streamed tokens), the
// timeline below them (messages as arrows between lanes, tool calls with status and duration,
// approve/deny buttons on calls waiting for approval), and the task tree and blackboard beside it
// (with a form for each MCP server's pending request for input).

import { api, followEvents } from "./api.js";
import { fill, formatMs, h, slug } from "./dom.js";
import { elicitationForm } from "./elicitation_form.js";
import { SessionModel, preview } from "./session_model.js";

export function showSession(root, sessionId) {
  const model = new SessionModel(sessionId);
  const sending = new Set();  // approval ids whose decision is on its way
  const forms = new Map();  // elicitation id -> its form (kept across renders, so typed values stay)
  let connection = "connecting";
  let flash = "";
  let frame = 0;

  const timeline = h("div", { class: "timeline", role: "list" });
  const side = h("aside", { class: "side" });
  const head = h("header", { class: "session-head" });
  fill(root, h("section", { class: "session", "data-session": sessionId }, head,
    h("div", { class: "session-body" }, h("div", { class: "timeline-wrap" }, timeline), side)));

  const rendered = new Map();  // item -> {el, version}
  const laneBacks = new Map();  // lane id -> background element
  const laneHeads = new Map();  // lane id -> header element

  async function decide(approvalId, verb) {
    sending.add(approvalId);
    schedule();
    try {
      await api(`/approvals/${encodeURIComponent(approvalId)}/${verb}`, { method: "POST",
        body: { reason: `${verb === "approve" ? "approved" : "denied"} in the console` } });
      flash = "";
    } catch (e) {
      sending.delete(approvalId);
      flash = `could not ${verb}: ${e.message}`;
    }
    schedule();
  }

  function approvalButtons(approvalId) {
    const approval = model.approvals.get(approvalId);
    if (!approval || approval.status !== "pending") return null;
    const busy = sending.has(approvalId);
    return h("span", { class: "decide" },
      h("button", { class: "approve", "data-approval": approvalId, disabled: busy,
                    onclick: () => decide(approvalId, "approve") }, "Approve"),
      h("button", { class: "deny", "data-approval": approvalId, disabled: busy,
                    onclick: () => decide(approvalId, "deny") }, "Deny"));
  }

  async function answerElicitation(id, action, content) {
    await api(`/elicitations/${encodeURIComponent(id)}/answer`, { method: "POST",
      body: { action, content, reason: `${action} in the console` } });
  }

  function elicitationForms() {
    const pending = model.pendingElicitations();
    for (const id of forms.keys()) if (!pending.some((e) => e.id === id)) forms.delete(id);
    return pending.map((req) => {
      if (!forms.has(req.id)) {
        forms.set(req.id, h("li", { "data-elicitation": req.id, "data-agent": req.agent },
          h("span", { class: "muted" }, `${req.tool} by ${req.agent}`),
          elicitationForm(req, (action, content) => answerElicitation(req.id, action, content))));
      }
      return forms.get(req.id);
    });
  }

  function laneIndex(id) {
    return [...model.lanes.keys()].indexOf(id);
  }

  function itemElement(item) {
    const row = String(item.row + 2);
    if (item.kind === "banner") {
      return h("div", { class: `item banner ${item.level || ""}`, role: "listitem", style: { gridRow: row, gridColumn: "1 / -1" } },
        h("strong", {}, item.text), item.detail ? h("span", { class: "detail" }, item.detail) : null,
        item.duration ? h("span", { class: "duration" }, formatMs(item.duration)) : null);
    }
    if (item.kind === "arrow") {
      const a = laneIndex(item.from);
      const b = laneIndex(item.to);
      const lo = Math.min(a, b);
      const span = Math.abs(a - b) + 1;
      const inset = `${50 / span}%`;
      return h("div", { class: "item arrow-row", role: "listitem", "data-from": item.from, "data-to": item.to,
                        style: { gridRow: row, gridColumn: `${lo + 1} / span ${span}` } },
        h("div", { class: `arrow ${a <= b ? "ltr" : "rtl"} ${item.delivered ? "delivered" : ""}`,
                   style: { left: inset, right: inset } },
          h("span", { class: "label" }, `${item.label || "message"}: ${item.text}`)));
    }
    const column = String(laneIndex(item.lane) + 1);
    const base = { role: "listitem", "data-lane": item.lane, style: { gridRow: row, gridColumn: column } };
    if (item.kind === "tool") {
      const elapsed = ["running", "waiting approval", "waiting input"].includes(item.status);
      return h("div", { ...base, class: `item tool status-${slug(item.status)}`, "data-tool": item.tool },
        h("div", { class: "tool-head" }, h("span", { class: "tool-name" }, item.tool),
          h("span", { class: "badge" }, item.status),
          elapsed ? h("span", { class: "elapsed", "data-since": item.since }, formatMs(Date.now() - item.since))
                  : h("span", { class: "duration" }, formatMs(item.duration))),
        h("code", { class: "args" }, item.args),
        item.progress ? h("div", { class: "progress" }, item.progress) : null,
        item.asked ? h("div", { class: "asked" }, item.asked) : null,
        item.decided ? h("div", { class: "decided" }, item.decided) : null,
        item.result ? h("div", { class: "result" }, item.result) : null,
        item.approval ? approvalButtons(item.approval) : null);
    }
    if (item.kind === "say") {
      return h("div", { ...base, class: "item say" }, item.text,
        item.duration ? h("span", { class: "duration" }, formatMs(item.duration)) : null);
    }
    return h("div", { ...base, class: `item note ${item.level || ""}` }, h("span", { class: "what" }, item.text),
      item.detail ? h("span", { class: "detail" }, item.detail) : null);
  }

  function renderLanes() {
    const lanes = model.laneList();
    timeline.style.gridTemplateColumns = `repeat(${lanes.length}, minmax(11rem, 1fr))`;
    const rows = String(model.items.length + 2);
    lanes.forEach((lane, i) => {
      let back = laneBacks.get(lane.id);
      if (!back) {
        back = h("div", { class: "lane", "data-lane": lane.id });
        laneBacks.set(lane.id, back);
        timeline.prepend(back);
      }
      Object.assign(back.style, { gridColumn: String(i + 1), gridRow: `1 / ${rows}` });
      const state = model.laneState(lane);
      const running = [...lane.running].map((key) => model.byKey.get(key)).filter(Boolean).map((it) => it.tool);
      const el = h("div", { class: `lane-head state-${slug(state || "none")}`, "data-lane": lane.id,
                            style: { gridColumn: String(i + 1), gridRow: "1" }, title: lane.role || lane.id },
        h("div", { class: "lane-name" }, lane.id),
        state ? h("span", { class: "state" }, state) : h("span", { class: "state muted" }, "user"),
        running.length ? h("div", { class: "running" }, `→ ${running.join(", ")}`) : null,
        lane.tokens ? h("div", { class: "tokens" }, lane.tokens) : null);
      const old = laneHeads.get(lane.id);
      if (old) old.replaceWith(el);
      else timeline.append(el);
      laneHeads.set(lane.id, el);
    });
  }

  function renderItems() {
    for (const item of model.items) {
      const seen = rendered.get(item);
      if (seen && seen.version === item.version) continue;
      const el = itemElement(item);
      if (seen) seen.el.replaceWith(el);
      else timeline.append(el);
      rendered.set(item, { el, version: item.version });
    }
  }

  function taskTree() {
    const children = new Map();
    for (const task of model.tasks.values()) {
      const parent = task.parent_id && model.tasks.has(task.parent_id) ? task.parent_id : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(task);
    }
    const branch = (parent) => {
      const list = children.get(parent);
      if (!list) return null;
      return h("ul", { class: "tasks" }, list.map((t) => h("li", { "data-task": t.id },
        h("span", { class: `badge task-${slug(t.status)}` }, t.status), " ", h("span", { class: "goal" }, t.goal),
        t.assignee ? h("span", { class: "muted" }, ` → ${t.assignee}`) : null,
        t.output ? h("div", { class: "output" }, preview(t.output, 200)) : null, branch(t.id))));
    };
    return branch(null) || h("p", { class: "muted" }, "no tasks");
  }

  function blackboardTable() {
    if (!model.blackboard.size) return h("p", { class: "muted" }, "empty");
    return h("table", { class: "blackboard" },
      h("thead", {}, h("tr", {}, h("th", {}, "key"), h("th", {}, "value"), h("th", {}, "v"), h("th", {}, "writer"))),
      h("tbody", {}, [...model.blackboard.values()].map((e) => h("tr", { "data-key": e.key, class: e.expired ? "expired" : "" },
        h("td", {}, e.key), h("td", {}, preview(e.value, 120)), h("td", {}, String(e.version)), h("td", {}, e.writer)))));
  }

  function renderSide() {
    const pending = model.pendingApprovals();
    const asking = elicitationForms();
    fill(side,
      asking.length ? h("h3", {}, `Input requested (${asking.length})`) : null,
      asking.length ? h("ul", { class: "elicitations" }, asking) : null,
      h("h3", {}, `Approvals waiting (${pending.length})`),
      pending.length ? h("ul", { class: "approvals" }, pending.map((a) => h("li", { "data-approval": a.id },
        h("strong", {}, a.tool), ` by ${a.agent}`, a.risk !== null ? h("span", { class: "muted" }, ` risk ${a.risk}`) : null,
        approvalButtons(a.id)))) : h("p", { class: "muted" }, "none"),
      h("h3", {}, "Tasks"), taskTree(),
      h("h3", {}, "Blackboard"), blackboardTable(),
      model.reply !== null || model.error ? h("h3", {}, "Result") : null,
      model.reply !== null ? h("div", { class: "reply" }, model.reply) : null,
      model.error ? h("div", { class: "error-text" }, model.error) : null);
  }

  async function send(form) {
    const input = form.elements.namedItem("input");
    try {
      await api(`/sessions/${encodeURIComponent(sessionId)}/turns`, { method: "POST", body: { input: input.value } });
      input.value = "";
      flash = "";
    } catch (e) {
      flash = `could not send: ${e.message}`;
    }
    schedule();
  }

  async function cancel() {
    try {
      await api(`/sessions/${encodeURIComponent(sessionId)}/cancel`, { method: "POST", body: {} });
    } catch (e) {
      flash = `could not cancel: ${e.message}`;
      schedule();
    }
  }

  function renderHead() {
    const live = !model.finished;
    fill(head,
      h("a", { href: "#/runs", class: "back" }, "← runs"),
      h("h2", {}, h("span", { class: "muted" }, "session "), sessionId),
      h("span", { class: `badge session-status status-${slug(model.status)}` }, model.status),
      model.team ? h("span", { class: "muted" }, ` team ${model.team}`) : null,
      h("span", { class: "connection muted" }, ` · ${connection} · ${model.events} events`),
      live ? h("form", { class: "turn", onsubmit: (e) => { e.preventDefault(); send(e.target); } },
        h("input", { name: "input", placeholder: "say something to the team", autocomplete: "off" }),
        h("button", { type: "submit" }, "Send"),
        h("button", { type: "button", class: "cancel", onclick: cancel }, "Cancel")) : null,
      flash ? h("div", { class: "flash" }, flash) : null);
  }

  function render() {
    frame = 0;
    renderHead();
    renderLanes();
    renderItems();
    renderSide();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(render);
  }

  const ticker = setInterval(() => {
    for (const el of timeline.querySelectorAll(".elapsed[data-since]")) {
      el.textContent = formatMs(Date.now() - Number(el.dataset.since));
    }
  }, 250);

  const stream = followEvents(sessionId, {
    onEvent(event) { model.apply(event); schedule(); },
    onEnd(status) { model.end(status); connection = "ended"; schedule(); },
    onStatus(text) { connection = text; schedule(); },
  });
  render();

  return () => {
    stream.stop();
    clearInterval(ticker);
    if (frame) cancelAnimationFrame(frame);
  };
}
