// The console's entry: asks for a key when the server wants one, then routes by the URL's hash:
// #/runs (default), #/session/<id> (live or finished: the same picture), #/sweep/<run id>.

import { AuthError, needsKey, storeKey, storedKey } from "./api.js";
import { fill, h } from "./dom.js";
import { showRuns, showSweep } from "./runs_view.js";
import { showSession } from "./session_view.js";

const main = document.getElementById("main");
const keyBox = document.getElementById("key");
let leave = null;

function askForKey(message) {
  const input = h("input", { type: "password", name: "key", placeholder: "trp_…", autocomplete: "off", required: true });
  fill(main, h("section", { class: "key-form" },
    h("h2", {}, "API key"),
    h("p", {}, message || "This server wants an API key (create one with `troupe keys create`). It is kept in this browser's localStorage."),
    h("form", { onsubmit: (e) => { e.preventDefault(); storeKey(input.value.trim()); start(); } },
      input, h("button", { type: "submit" }, "Use key"))));
}

function renderKeyBox(keyed) {
  fill(keyBox, keyed
    ? h("button", { class: "link", onclick: () => { storeKey(""); start(); } }, "forget key")
    : h("span", { class: "muted" }, "keyless (loopback)"));
}

async function route() {
  if (leave) {
    leave();
    leave = null;
  }
  const [, view, id] = (location.hash || "#/runs").split("/").map(decodeURIComponent);
  try {
    if (view === "session" && id) leave = showSession(main, id);
    else if (view === "sweep" && id) await showSweep(main, id);
    else await showRuns(main);
  } catch (e) {
    if (e instanceof AuthError) askForKey(`The key was refused: ${e.message}`);
    else fill(main, h("div", { class: "flash" }, e.message));
  }
}

async function start() {
  try {
    if (await needsKey()) {
      renderKeyBox(false);
      askForKey(storedKey() ? "The stored key was refused; enter another." : "");
      return;
    }
  } catch (e) {
    fill(main, h("div", { class: "flash" }, `The server did not answer: ${e.message}`));
    return;
  }
  renderKeyBox(Boolean(storedKey()));
  await route();
}

window.addEventListener("hashchange", route);
start();
