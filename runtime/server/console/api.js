// The console's only way to the server: JSON calls and the SSE event stream, both under /api/v1,
// both with the key (if any) in an Authorization header. EventSource cannot send headers, so the
// stream is read with fetch and parsed here; it reconnects with Last-Event-ID after a drop.

const KEY_ITEM = "troupe.key";

export class AuthError extends Error {}

export function storedKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function storeKey(key) {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

function headers(extra = {}) {
  const key = storedKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

async function reason(response) {
  try {
    const body = await response.json();
    return body.reason || body.error || body.detail || response.statusText;
  } catch {
    return response.statusText;
  }
}

// GET (or POST with `body`) a JSON route; throws AuthError on 401 and Error(reason) on other failures.
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(`/api/v1${path}`, init);
  if (response.status === 401) throw new AuthError(await reason(response));
  if (!response.ok) throw new Error(`${response.status}: ${await reason(response)}`);
  return response.status === 204 ? null : response.json();
}

// Whether a key must be asked for: a keyless loopback server answers the session list without one,
// a keyed server with the stored key (if it is still valid).
export async function needsKey() {
  try {
    await api("/sessions?limit=1");
    return false;
  } catch (e) {
    if (e instanceof AuthError) return true;
    throw e;
  }
}

// Parses text/event-stream frames out of a byte stream: yields {id, event, data} per frame.
export async function* sseFrames(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const frame = { id: null, event: "message", data: "" };
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;  // a comment: the server's heartbeat
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "id") frame.id = text;
        else if (field === "event") frame.event = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length && frame.id === null) continue;
      frame.data = data.join("\n");
      yield frame;
    }
  }
}

// Follows a session's events until the server sends `end` (or `stop()` is called). Calls
// onEvent(event, id) for each event (id is null for tokens), onEnd(status) once, onStatus(text) for
// connection changes. After a drop it reconnects with Last-Event-ID: no event lost or repeated.
export function followEvents(sessionId, { onEvent, onEnd, onStatus = () => {} }) {
  const controller = new AbortController();
  let lastId = 0;
  let stopped = false;

  async function connectOnce() {
    const extra = lastId ? { "Last-Event-ID": String(lastId) } : {};
    const response = await fetch(`/api/v1/sessions/${encodeURIComponent(sessionId)}/events`, {
      headers: headers({ Accept: "text/event-stream", ...extra }),
      signal: controller.signal,
      cache: "no-store",
    });
    if (response.status === 401) throw new AuthError(await reason(response));
    if (!response.ok) throw new Error(`${response.status}: ${await reason(response)}`);
    onStatus(lastId ? "reconnected" : "live");
    for await (const frame of sseFrames(response.body)) {
      if (frame.event === "end") {
        let status = null;
        try { status = JSON.parse(frame.data).status; } catch { /* no status */ }
        return { ended: true, status };
      }
      let event;
      try { event = JSON.parse(frame.data); } catch { continue; }
      if (frame.id !== null) {
        const n = Number(frame.id);
        if (n <= lastId) continue;  // defensive: never apply an event twice
        lastId = n;
      }
      onEvent(event, frame.id === null ? null : lastId);
    }
    return { ended: false };
  }

  (async () => {
    let delay = 250;
    while (!stopped) {
      try {
        const outcome = await connectOnce();
        if (outcome.ended) {
          stopped = true;
          onEnd(outcome.status);
          return;
        }
        delay = 250;  // the stream closed cleanly without `end`: pick up where it stopped
      } catch (e) {
        if (stopped || e.name === "AbortError") return;
        if (e instanceof AuthError) {
          onStatus(`refused: ${e.message}`);
          return;
        }
        onStatus(`disconnected (${e.message}); retrying`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();

  return {
    stop() {
      stopped = true;
      controller.abort();
    },
    get lastId() { return lastId; },
  };
}
