// Building the DOM without HTML strings: text always goes in as text nodes, never parsed.

/**
 * h("button", {class: "primary", onclick: fn, "aria-label": "Send"}, "Send", child, ...)
 * Attributes: `on<event>` adds a listener, `class`, `hidden`, `disabled` ... as properties or
 * attributes; `null`/`undefined`/`false` leave one out. Children: nodes, strings, arrays.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace everything inside `element` with `children`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let uid = 0;
/** A unique id for pairing labels with inputs. */
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled form field: [label, input] with the input's id set. */
export function field(labelText, input, hint) {
  const id = input.id || nextId();
  input.id = id;
  const parts = [h("label", { for: id }, labelText), input];
  if (hint) {
    const hintId = `${id}-hint`;
    input.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "field-hint", id: hintId }, hint));
  }
  return parts;
}

export function formatDay(day) {
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86400000).toISOString().slice(0, 10);
  if (day === today) return "Today";
  if (day === yesterday) return "Yesterday";
  return day;
}

export function formatTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString();
}
