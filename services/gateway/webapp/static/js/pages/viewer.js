// Looking at data: any JSON value as a collapsible tree, and any array of objects (or CSV text)
// as a sortable table shown a page at a time. Both build only what is on screen — a branch's
// children when it is opened (and a hundred at a time), a table's current page — so a large
// report or file never freezes the page. Keyboard: every toggle, sort and pager is a button.
import { h, nextId, replace } from "../dom.js";

const CHILDREN_AT_ONCE = 100;
const PAGE_ROWS = 50;

// ---- the tree --------------------------------------------------------------------------------

function kindOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function leaf(value) {
  const kind = kindOf(value);
  const text = kind === "string" ? JSON.stringify(value) : String(value);
  return h("span", { class: `json-value json-${kind}` }, text);
}

function sizeText(value) {
  const n = Array.isArray(value) ? value.length : Object.keys(value).length;
  return Array.isArray(value) ? `[${n} item${n === 1 ? "" : "s"}]` : `{${n} key${n === 1 ? "" : "s"}}`;
}

function node(key, value, open) {
  const name = key === null ? null : h("span", { class: "json-key" }, `${key}: `);
  if (value === null || typeof value !== "object") return h("li", { class: "json-leaf" }, name, leaf(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  const childrenId = nextId("json");
  const list = h("ul", { class: "json-children", id: childrenId, hidden: true });
  let shown = 0;
  function more() {
    const end = Math.min(entries.length, shown + CHILDREN_AT_ONCE);
    list.querySelector(":scope > .json-more")?.remove();
    for (const [k, v] of entries.slice(shown, end)) list.append(node(k, v, false));
    shown = end;
    if (shown < entries.length) {
      const rest = entries.length - shown;
      list.append(h("li", { class: "json-more" }, h("button", { type: "button", class: "link", onclick: more }, `Show ${Math.min(rest, CHILDREN_AT_ONCE)} more of ${rest}`)));
    }
  }
  const toggle = h(
    "button",
    {
      type: "button",
      class: "json-toggle",
      "aria-expanded": "false",
      "aria-controls": childrenId,
      onclick: () => setOpen(toggle.getAttribute("aria-expanded") !== "true"),
    },
    // The arrow is drawn by CSS on a hidden span, so it stays out of the button's name.
    h("span", { class: "json-arrow", "aria-hidden": "true" }),
    name,
    h("span", { class: "json-size" }, sizeText(value)),
  );
  function setOpen(wanted) {
    if (wanted && shown === 0 && entries.length) more();
    toggle.setAttribute("aria-expanded", String(wanted));
    list.hidden = !wanted;
  }
  const item = h("li", { class: "json-branch" }, toggle, list);
  if (open) setOpen(true);
  return item;
}

/** `value` as a tree of buttons (aria-expanded) that open and close its objects and arrays. */
export function jsonTree(value, { label = "JSON" } = {}) {
  const tree = h("ul", { class: "json-tree", "aria-label": label }, node(null, value, true));
  const expandAll = h("button", { type: "button", onclick: () => openAll(tree, true) }, "Expand all");
  const collapseAll = h("button", { type: "button", onclick: () => openAll(tree, false) }, "Collapse all");
  return h("div", { class: "json-viewer" }, h("div", { class: "buttons viewer-buttons" }, expandAll, collapseAll), tree);
}

function openAll(tree, wanted) {
  // Opening renders lazily, so open level by level (a bounded number of nodes at most).
  let budget = 2000;
  let pending = [...tree.querySelectorAll(":scope > li > .json-toggle")];
  while (pending.length && budget > 0) {
    const next = [];
    for (const toggle of pending) {
      if ((toggle.getAttribute("aria-expanded") === "true") !== wanted) toggle.click();
      budget -= 1;
      if (wanted) next.push(...toggle.parentElement.querySelectorAll(":scope > ul > li > .json-toggle"));
    }
    pending = wanted ? next : [];
  }
  if (!wanted) for (const toggle of tree.querySelectorAll(".json-toggle[aria-expanded=true]")) toggle.click();
}

// ---- CSV -------------------------------------------------------------------------------------

/** Rows of RFC 4180 CSV text (quoted fields, doubled quotes, newlines inside quotes). */
export function parseCsvRows(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** CSV text with a header row as objects. */
export function parseCsv(text) {
  const [header = [], ...rows] = parseCsvRows(text);
  return rows.map((cells) => Object.fromEntries(header.map((name, i) => [name, cells[i] ?? ""])));
}

function csvCell(value) {
  const text = value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Objects as CSV text, one column per key (in `columns` order when given). */
export function toCsv(rows, columns = null) {
  const names = columns || columnsOf(rows);
  return [names.map(csvCell).join(","), ...rows.map((row) => names.map((name) => csvCell(row[name])).join(","))].join("\r\n") + "\r\n";
}

// ---- the table -------------------------------------------------------------------------------

function columnsOf(rows) {
  const names = new Set();
  for (const row of rows.slice(0, 1000)) for (const name of Object.keys(row)) names.add(name);
  return [...names];
}

function cellText(value) {
  if (value == null) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function compare(a, b) {
  if (a == null || a === "") return b == null || b === "" ? 0 : 1;
  if (b == null || b === "") return -1;
  const x = Number(a);
  const y = Number(b);
  if (typeof a !== "object" && typeof b !== "object" && !Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  return cellText(a).localeCompare(cellText(b));
}

/**
 * `rows` (objects, or CSV text with a header row) as a table: a button in each column's header
 * sorts by it (again: the other way), and the rows show `pageSize` at a time.
 */
export function dataTable(rows, { caption = "Data", pageSize = PAGE_ROWS, columns = null } = {}) {
  const all = typeof rows === "string" ? parseCsv(rows) : rows;
  const names = columns || columnsOf(all);
  let order = all;
  let sortedBy = null;
  let descending = false;
  let pageIndex = 0;
  const pages = () => Math.max(1, Math.ceil(order.length / pageSize));
  const body = h("tbody");
  const headers = names.map((name) =>
    h("th", { scope: "col", "aria-sort": "none" }, h("button", { type: "button", class: "sort", onclick: () => sortBy(name) }, name)),
  );
  const status = h("p", { class: "pager-status", role: "status", "aria-live": "polite" });
  const previous = h("button", { type: "button", onclick: () => go(pageIndex - 1) }, "Previous page");
  const next = h("button", { type: "button", onclick: () => go(pageIndex + 1) }, "Next page");

  function sortBy(name) {
    descending = sortedBy === name ? !descending : false;
    sortedBy = name;
    const sign = descending ? -1 : 1;
    order = [...all].sort((a, b) => sign * compare(a[name], b[name]));
    names.forEach((one, i) => headers[i].setAttribute("aria-sort", one === name ? (descending ? "descending" : "ascending") : "none"));
    go(0);
  }

  function go(index) {
    pageIndex = Math.min(Math.max(0, index), pages() - 1);
    const slice = order.slice(pageIndex * pageSize, (pageIndex + 1) * pageSize);
    replace(body, slice.map((row) => h("tr", {}, names.map((name) => h("td", {}, cellText(row[name]))))));
    const first = order.length ? pageIndex * pageSize + 1 : 0;
    status.textContent = `Rows ${first} to ${pageIndex * pageSize + slice.length} of ${order.length}, page ${pageIndex + 1} of ${pages()}`;
    previous.disabled = pageIndex === 0;
    next.disabled = pageIndex >= pages() - 1;
  }

  go(0);
  return h(
    "div",
    { class: "data-table" },
    h("div", { class: "table-scroll" }, h("table", { class: "viewer-table" }, h("caption", {}, caption), h("thead", {}, h("tr", {}, headers)), body)),
    h("div", { class: "pager", role: "group", "aria-label": `${caption}: pages` }, previous, status, next),
  );
}

/** Anything: a table for an array of objects or CSV text (with the tree a click away for
 * JSON), else the tree. */
export function viewer(value, { label = "Data" } = {}) {
  const tabular =
    typeof value === "string" || (Array.isArray(value) && value.length > 0 && value.every((v) => v && typeof v === "object" && !Array.isArray(v)));
  if (!tabular) return jsonTree(value, { label });
  if (typeof value === "string") return dataTable(value, { caption: label });
  const box = h("div", { class: "viewer" });
  const asTable = h("button", { type: "button", "aria-pressed": "true" }, "Table");
  const asTree = h("button", { type: "button", "aria-pressed": "false" }, "Tree");
  const shown = h("div", { class: "viewer-body" });
  function show(table) {
    asTable.setAttribute("aria-pressed", String(table));
    asTree.setAttribute("aria-pressed", String(!table));
    replace(shown, table ? dataTable(value, { caption: label }) : jsonTree(value, { label }));
  }
  asTable.addEventListener("click", () => show(true));
  asTree.addEventListener("click", () => show(false));
  show(true);
  return replace(box, h("div", { class: "buttons viewer-buttons", role: "group", "aria-label": `${label}: show as` }, asTable, asTree), shown);
}

/** `content` (text) saved as a file named `name`. */
export function saveText(content, name, type) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
