// A session's picture, built from its events alone (live from the stream, or a finished run read
// back from the lake: the same code, so yesterday's run looks like today's). No DOM here.

const SERVICES = new Set(["session", "supervisor"]);
const TOKEN_TAIL = 600;

function payload(event) {
  if (event.payload && typeof event.payload === "object") return event.payload;
  try {
    return JSON.parse(event.payload || "{}");
  } catch {
    return {};
  }
}

export function preview(value, limit = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined || text === null) return "";
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

export class SessionModel {
  constructor(sessionId) {
    this.id = sessionId;
    this.status = "connecting";
    this.team = "";
    this.input = "";
    this.reply = null;
    this.error = null;
    this.startedAt = null;
    this.finished = false;
    this.lanes = new Map();  // id -> lane
    this.items = [];  // the timeline, in order: one row each
    this.byKey = new Map();
    this.tasks = new Map();
    this.blackboard = new Map();
    this.approvals = new Map();  // approval id -> {id, call, agent, tool, status}
    this.elicitations = new Map();  // elicitation id -> {id, call, agent, tool, server, message, mode, schema, url, status}
    this.events = 0;
    this.version = 0;  // bumped on every change (the view re-renders when it moved)
    this.lane("user", { role: "the person (or program) talking to the team" });
  }

  lane(id, { role = "" } = {}) {
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { id, role, busy: false, running: new Set(), waiting: 0, asking: 0, paused: false, error: null,
               tokens: "", round: 0, calls: 0 };
      this.lanes.set(id, lane);
    } else if (role && !lane.role) {
      lane.role = role;
    }
    return lane;
  }

  laneState(lane) {
    if (lane.id === "user") return "";
    if (this.finished) return lane.error ? "error" : "done";
    if (lane.error) return "error";
    if (lane.paused) return "paused";
    if (lane.asking > 0) return "waiting input";
    if (lane.waiting > 0) return "waiting approval";
    if (lane.running.size > 0) return "calling tool";
    if (lane.busy) return "thinking";
    return "idle";
  }

  add(item) {
    item.row = this.items.length;
    item.version = 1;
    this.items.push(item);
    if (item.key) this.byKey.set(item.key, item);
    return item;
  }

  touch(item, changes) {
    Object.assign(item, changes);
    item.version += 1;
  }

  // An agent lane for the event's agent (services such as the supervisor get none).
  agentLane(event) {
    const agent = event.agent;
    if (!agent || SERVICES.has(agent)) return null;
    return this.lane(agent);
  }

  arrow(from, to, p, { label, messageId }) {
    if (messageId && this.byKey.has(`msg:${messageId}`)) {
      this.touch(this.byKey.get(`msg:${messageId}`), { delivered: true });
      return;
    }
    this.lane(from);
    this.lane(to);
    this.add({ kind: "arrow", key: messageId ? `msg:${messageId}` : null, from, to, label,
               text: preview(p.content, 240), delivered: false });
  }

  apply(event) {
    this.events += 1;
    this.version += 1;
    const p = payload(event);
    const lane = this.agentLane(event);
    const ts = event.ts ? Date.parse(event.ts) : Date.now();
    switch (event.type) {
      case "session.started": {
        this.status = "running";
        this.team = p.team || "";
        this.input = p.input || "";
        this.startedAt = ts;
        const agents = (p.config && Array.isArray(p.config.agents)) ? p.config.agents : [];
        for (const a of agents) if (a && a.id) this.lane(a.id, { role: a.role || a.name || "" });
        if (p.entry) this.lane(p.entry);
        this.add({ kind: "banner", text: `session started: team ${this.team || "?"}`, detail: preview(p.input, 300) });
        break;
      }
      case "session.resumed":
        this.status = event.status || "running";
        this.finished = false;
        this.add({ kind: "banner", text: "session resumed" });
        break;
      case "session.finished":
        this.status = event.status || "finished";
        this.reply = p.reply ?? null;
        this.error = p.error ?? null;
        this.finished = true;
        this.add({ kind: "banner", text: `session ${this.status}`, detail: preview(p.reply || p.error || "", 300),
                   duration: event.duration_ms });
        break;
      case "turn.finished":
        this.reply = p.reply ?? this.reply;
        this.add({ kind: "banner", text: `turn ${p.turn} finished`, detail: preview(p.reply, 300) });
        break;
      case "message.sent": {
        if (!lane) break;
        if (p.to) this.arrow(lane.id, p.to, p, { label: p.kind, messageId: p.id });
        else this.add({ kind: "note", lane: lane.id, text: `published on ${p.topic}`, detail: preview(p.content) });
        break;
      }
      case "message.delivered": {
        if (!lane) break;
        let from = p.sender || "?";
        // A task's message comes from the task service: draw it from the agent that created the task.
        const task = p.data && p.data.task_id ? this.tasks.get(p.data.task_id) : null;
        if (task && task.creator && !this.lanes.has(from)) from = task.creator;
        this.arrow(from, lane.id, p, { label: p.kind, messageId: p.id });
        break;
      }
      case "agent.state":
        if (!lane) break;
        if (p.to === "running") lane.busy = true;
        else if (p.to === "idle" || p.to === "terminated") { lane.busy = false; lane.running.clear(); }
        lane.paused = p.to === "paused";
        if (p.to === "error") lane.error = "error";
        else if (p.to) lane.error = null;
        break;
      case "agent.spawned":
        if (lane) this.add({ kind: "note", lane: p.parent || lane.id, text: `spawned ${lane.id}` });
        break;
      case "agent.error":
        if (!lane) break;
        lane.error = p.error || "error";
        this.add({ kind: "note", lane: lane.id, level: "error", text: "error", detail: preview(p.error, 300) });
        break;
      case "llm.request":
        if (!lane) break;
        lane.busy = true;
        lane.tokens = "";
        lane.round = p.round || lane.round + 1;
        break;
      case "llm.token":
        if (!lane) break;
        lane.busy = true;
        lane.tokens = (lane.tokens + (p.text || "")).slice(-TOKEN_TAIL);
        break;
      case "llm.response":
        if (!lane) break;
        lane.tokens = "";
        if (p.text) this.add({ kind: "say", lane: lane.id, text: preview(p.text, 600), duration: event.duration_ms });
        break;
      case "llm.error":
        if (lane) this.add({ kind: "note", lane: lane.id, level: "error", text: `model error (${p.reason})`,
                             detail: preview(p.error, 300) });
        break;
      case "tool.call": {
        if (!lane) break;
        const key = `call:${lane.id}:${p.id}`;
        lane.running.add(key);
        lane.calls += 1;
        this.add({ kind: "tool", key, lane: lane.id, tool: event.tool, args: preview(p.arguments, 200),
                   status: "running", since: ts, duration: null, result: "", approval: null });
        break;
      }
      case "tool.result":
      case "tool.error": {
        if (!lane) break;
        const key = `call:${lane.id}:${p.id}`;
        lane.running.delete(key);
        const item = this.byKey.get(key);
        const status = event.type === "tool.result" ? "ok" : "error";
        if (item) this.touch(item, { status: item.status === "denied" ? "denied" : status,
                                     duration: event.duration_ms ?? (ts - item.since), result: preview(p.result, 300) });
        break;
      }
      case "tool.progress": {
        const item = lane && this.byKey.get(`call:${lane.id}:${p.id}`);
        if (item) this.touch(item, { progress: p.total ? `${p.progress}/${p.total}` : `${p.progress ?? ""} ${p.message ?? ""}` });
        break;
      }
      case "guardrail.denied": {
        const item = lane && this.byKey.get(`call:${lane.id}:${p.id}`);
        if (item) this.touch(item, { status: "denied", result: preview(p.error, 300) });
        break;
      }
      case "approval.requested": {
        const agent = p.agent || (lane && lane.id);
        const owner = this.lane(agent);
        owner.waiting += 1;
        const approval = { id: p.id, agent, tool: p.tool, status: "pending", call: `call:${agent}:${p.call_id}`,
                           risk: p.risk ? p.risk.score : null };
        this.approvals.set(p.id, approval);
        const item = this.byKey.get(approval.call);
        if (item) this.touch(item, { status: "waiting approval", approval: p.id });
        else this.add({ kind: "tool", key: approval.call, lane: agent, tool: p.tool, args: preview(p.arguments, 200),
                        status: "waiting approval", since: ts, duration: null, result: "", approval: p.id });
        break;
      }
      case "approval.decided": {
        const approval = this.approvals.get(p.id);
        if (!approval) break;
        if (approval.status === "pending") this.lane(approval.agent).waiting -= 1;
        approval.status = p.approved ? "approved" : "denied";
        approval.by = p.by;
        const item = this.byKey.get(approval.call);
        if (item) this.touch(item, { status: p.approved ? "running" : "denied",
                                     decided: `${approval.status} by ${p.by}${p.reason ? `: ${p.reason}` : ""}` });
        break;
      }
      case "elicitation.requested": {
        const agent = event.agent || (lane && lane.id) || "?";
        const owner = this.lane(agent);
        owner.asking += 1;
        const req = { id: p.id, agent, tool: event.tool, call: `call:${agent}:${p.call_id}`, server: p.server,
                      message: p.message, mode: p.mode || "form", schema: p.requested_schema || null, url: p.url,
                      status: "pending" };
        this.elicitations.set(p.id, req);
        const item = this.byKey.get(req.call);
        if (item) this.touch(item, { status: "waiting input", asked: `${p.server} asks: ${p.message}` });
        break;
      }
      case "elicitation.answered": {
        const req = this.elicitations.get(p.id);
        if (!req) break;
        if (req.status === "pending") this.lane(req.agent).asking -= 1;
        req.status = p.action;
        const item = this.byKey.get(req.call);
        if (item) this.touch(item, { status: item.status === "waiting input" ? "running" : item.status,
                                     decided: `input ${p.action} by ${p.by}${p.reason ? `: ${p.reason}` : ""}` });
        break;
      }
      case "task.created": {
        const task = { id: event.task_id, parent_id: p.parent_id, goal: p.goal, assignee: p.assignee,
                       status: event.status || "pending", output: null, creator: event.agent };
        if (task.id) this.tasks.set(task.id, task);
        if (lane) this.add({ kind: "note", lane: lane.id, text: `task for ${p.assignee || "anyone"}`, detail: preview(p.goal) });
        break;
      }
      case "task.status": {
        const task = this.tasks.get(event.task_id);
        if (task) Object.assign(task, { status: p.to || event.status, assignee: p.assignee ?? task.assignee,
                                        output: p.output ?? task.output, error: p.error });
        if (lane) this.add({ kind: "note", lane: lane.id, level: p.to === "failed" ? "error" : "",
                             text: `task ${p.to}`, detail: preview(task ? task.goal : event.task_id) });
        break;
      }
      case "blackboard.put":
        this.blackboard.set(p.key, { key: p.key, value: p.value, version: p.version, writer: p.author, kind: p.kind });
        if (lane) this.add({ kind: "note", lane: lane.id, text: `wrote ${p.key} v${p.version}`, detail: preview(p.value) });
        break;
      case "blackboard.expired": {
        const entry = this.blackboard.get(p.key);
        if (entry && entry.version === p.version) entry.expired = true;
        break;
      }
      case "budget.exceeded":
        this.add({ kind: "banner", level: "error", text: `budget ${p.budget} exceeded (limit ${p.limit})` });
        break;
      default:
        this.version -= 1;  // nothing shown for this type
    }
  }

  end(status) {
    this.finished = true;
    if (status) this.status = status;
    this.version += 1;
  }

  pendingElicitations() {
    if (this.finished) return [];
    return [...this.elicitations.values()].filter((e) => e.status === "pending");
  }

  pendingApprovals() {
    return [...this.approvals.values()].filter((a) => a.status === "pending");
  }

  // Lanes in display order: the user, then agents as the team file lists them, then the rest.
  laneList() {
    return [...this.lanes.values()];
  }
}
