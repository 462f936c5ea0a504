// A small form for an MCP server's request for input (an elicitation), generated from its
// requested_schema: string, number, integer and boolean fields and choices (enum / oneOf consts), each
// with its default. Accept sends the values (left-out fields take the schema's defaults on the server;
// a misfit is refused with what is wrong and the form stays); Decline declines. A URL request shows
// its link with Done / Decline.

import { h } from "./dom.js";

function choices(prop) {
  if (Array.isArray(prop.enum)) return prop.enum.map((v, i) => ({ value: v, label: (prop.enumNames || [])[i] ?? String(v) }));
  if (Array.isArray(prop.oneOf)) {
    return prop.oneOf.filter((o) => o && "const" in o).map((o) => ({ value: o.const, label: o.title ?? String(o.const) }));
  }
  return null;
}

function field(prefix, name, prop, required) {
  const id = `${prefix}-${name}`;
  const options = choices(prop);
  const has = "default" in prop;
  let input;
  if (options) {
    input = h("select", { name, id },
      required && has ? null : h("option", { value: "" }, required ? "choose…" : "(none)"),
      options.map((o, i) => h("option", { value: String(i), selected: has && o.value === prop.default }, o.label)));
  } else if (prop.type === "boolean") {
    input = h("input", { type: "checkbox", name, id, checked: has && prop.default === true });
  } else if (prop.type === "integer" || prop.type === "number") {
    input = h("input", { type: "number", name, id, step: prop.type === "integer" ? "1" : "any",
                         value: has ? String(prop.default) : null });
  } else {
    input = h("input", { type: "text", name, id, autocomplete: "off", value: has ? String(prop.default) : null });
  }
  return h("label", { class: "field", for: id, "data-field": name },
    h("span", { class: "field-name" }, prop.title || name, required ? h("span", { class: "required" }, " *") : null),
    input,
    prop.description ? h("span", { class: "muted field-desc" }, prop.description) : null);
}

// The form's values: what the user filled in (empty text and "(none)" choices are left out).
function values(form, schema) {
  const out = {};
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    const options = choices(prop);
    if (options) {
      if (input.value !== "") out[name] = options[Number(input.value)].value;
    } else if (prop.type === "boolean") {
      out[name] = input.checked;
    } else if (input.value.trim() !== "") {
      out[name] = prop.type === "integer" || prop.type === "number" ? Number(input.value) : input.value;
    }
  }
  return out;
}

// The form element for pending elicitation `req` ({id, server, message, mode, schema, url}); calls
// answer(action, content) and shows its error (a thrown Error's message) in the form.
export function elicitationForm(req, answer) {
  const schema = req.schema || {};
  const required = new Set(schema.required || []);
  const error = h("div", { class: "form-error", role: "alert" });
  const buttons = h("div", { class: "decide" });
  const form = h("form", { class: "elicitation", "data-elicitation": req.id, novalidate: true });

  async function send(action, content) {
    for (const b of buttons.querySelectorAll("button")) b.disabled = true;
    error.textContent = "";
    try {
      await answer(action, content);
    } catch (e) {
      error.textContent = e.message;
      for (const b of buttons.querySelectorAll("button")) b.disabled = false;
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send("accept", req.mode === "url" ? null : values(form, schema));
  });
  buttons.append(
    h("button", { type: "submit", class: "accept" }, req.mode === "url" ? "Done" : "Accept"),
    h("button", { type: "button", class: "decline", onclick: () => send("decline", null) }, "Decline"));
  const fields = req.mode === "url"
    ? [h("a", { href: req.url, target: "_blank", rel: "noopener noreferrer" }, req.url)]
    : Object.entries(schema.properties || {}).map(([name, prop]) => field(`el-${req.id}`, name, prop || {}, required.has(name)));
  form.append(h("div", { class: "asks" }, h("strong", {}, req.server), " asks: ", req.message), ...fields, error, buttons);
  return form;
}
