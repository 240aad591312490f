// Administration (admins only): users (search, ban with a reason, unban, roles), the audit
// log (by action, by user), daily token quotas, and moderation (a full-text search of
// everyone's messages, with its CSV export). Filters live in the fragment's query
// (#/admin/audit?user=<username>), so a row's "Audit log" link opens the filtered view.
import * as api from "../api.js";
import { field, formatTime, h, replace } from "../dom.js";
import { guarded, searchForm } from "../ui.js";
import { download } from "./chat_files.js";

const ADMIN = "/api/v1/admin";
const TABS = [
  ["users", "Users"],
  ["audit", "Audit log"],
  ["quotas", "Quotas"],
  ["moderation", "Moderation"],
];
const ACTIONS = [
  "user.registered",
  "user.role_changed",
  "user.banned",
  "user.unbanned",
  "auth.login",
  "auth.logout",
  "auth.refresh_reuse",
  "api_key.created",
  "api_key.revoked",
  "auth.email_verified",
  "auth.password_reset",
];

function hashQuery() {
  return new URLSearchParams(window.location.hash.split("?")[1] || "");
}

function table(label, columns, body) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "versions admin-table", "aria-label": label }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), body),
  );
}

/** The user named `username` (exactly), through the admin search; an Error when none. */
async function userNamed(username, signal) {
  const name = username.trim().replace(/^@/, "").toLowerCase();
  const page = await api.api("GET", `${ADMIN}/users?${new URLSearchParams({ q: name, limit: "100" })}`, { signal });
  const user = page.items.find((u) => u.username === name);
  if (!user) throw new Error(`No user named “${name}”.`);
  return user;
}

// ---- users --------------------------------------------------------------------------------

function userRow(user, refresh) {
  const row = h("tr", { "data-user-id": user.id });
  const role = h("select", { "aria-label": `Role of @${user.username}` }, ["user", "admin"].map((r) => h("option", { value: r, selected: r === user.role }, r)));
  const setRole = h("button", { type: "button", "aria-label": `Set role for @${user.username}` }, "Set role");
  setRole.addEventListener("click", () =>
    guarded(async () => {
      const updated = await api.api("PUT", `${ADMIN}/users/${user.id}/role`, { body: { role: role.value } });
      refresh(updated);
    }, setRole),
  );
  const actions = h("div", { class: "row-actions" });
  if (user.is_banned) {
    const unban = h("button", { type: "button", "aria-label": `Unban @${user.username}` }, "Unban");
    unban.addEventListener("click", () =>
      guarded(async () => {
        refresh(await api.api("POST", `${ADMIN}/users/${user.id}/unban`));
      }, unban),
    );
    actions.append(unban);
  } else {
    const ban = h("button", { type: "button", class: "danger", "aria-label": `Ban @${user.username}` }, "Ban");
    const reason = h("input", { name: "reason", required: true, maxlength: 500, "aria-label": `Reason for banning @${user.username}` });
    const confirm = h("button", { type: "submit", class: "danger" }, "Confirm ban");
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h(
      "form",
      {
        class: "ban-form",
        hidden: true,
        onsubmit: (event) => {
          event.preventDefault();
          guarded(async () => {
            refresh(await api.api("POST", `${ADMIN}/users/${user.id}/ban`, { body: { reason: reason.value.trim() } }));
          }, confirm);
        },
      },
      reason,
      confirm,
      cancel,
    );
    ban.addEventListener("click", () => {
      form.hidden = false;
      ban.hidden = true;
      reason.focus();
    });
    cancel.addEventListener("click", () => {
      form.hidden = true;
      ban.hidden = false;
      ban.focus();
    });
    actions.append(ban, form);
  }
  actions.append(
    h("a", { href: `#/admin/audit?user=${encodeURIComponent(user.username)}`, "aria-label": `Audit log of @${user.username}` }, "Audit log"),
    h("a", { href: `#/admin/quotas?user=${encodeURIComponent(user.username)}`, "aria-label": `Quota of @${user.username}` }, "Quota"),
    h("a", { href: `#/admin/moderation?user=${encodeURIComponent(user.username)}`, "aria-label": `Messages of @${user.username}` }, "Messages"),
  );
  replace(
    row,
    h("td", { class: "nowrap" }, h("a", { href: `#/people/${user.username}` }, `@${user.username}`), user.display_name ? h("div", { class: "muted" }, user.display_name) : null),
    h("td", {}, user.email, h("div", { class: "muted" }, user.email_verified ? "verified" : "not verified")),
    h("td", {}, role, " ", setRole),
    h("td", { class: user.is_banned ? "status-failed" : "" }, user.is_banned ? `banned ${formatTime(user.banned_at)}: ${user.ban_reason || ""}` : "active"),
    h("td", {}, formatTime(user.created_at)),
    h("td", {}, actions),
  );
  return row;
}

async function usersTab(panel, signal) {
  const q = h("input", { type: "search", name: "q", autocomplete: "off", maxlength: 100 });
  const body = h("tbody");
  const status = h("p", { class: "status-line", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "More users");
  let cursor = null;
  function add(user) {
    const row = userRow(user, (updated) => {
      const fresh = add(updated);
      row.replaceWith(fresh);
      status.textContent = `@${updated.username}: ${updated.is_banned ? "banned" : "active"}, ${updated.role}.`;
    });
    return row;
  }
  async function load(reset) {
    const query = new URLSearchParams({ limit: "25" });
    if (q.value.trim()) query.set("q", q.value.trim());
    if (!reset && cursor) query.set("cursor", cursor);
    const page = await api.api("GET", `${ADMIN}/users?${query}`, { signal });
    if (reset) replace(body);
    body.append(...page.items.map(add));
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No user matches.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  const form = searchForm({
    label: "User search",
    fieldLabel: "Search users",
    hint: "Part of a username, display name or email.",
    input: q,
    more,
    load,
  });
  replace(panel, form, status, table("Users", ["User", "Email", "Role", "State", "Joined", "Actions"], body), more);
  await load(true);
}

// ---- audit log ------------------------------------------------------------------------------

async function auditTab(panel, signal) {
  const params = hashQuery();
  const action = h("select", { name: "action" }, h("option", { value: "" }, "All actions"), ACTIONS.map((a) => h("option", { value: a }, a)));
  const who = h("input", { name: "user", autocomplete: "off", maxlength: 32 });
  const body = h("tbody");
  const status = h("p", { class: "status-line", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "Older records");
  let cursor = null;
  let userId = null;
  if (params.get("user")) {
    who.value = params.get("user");
    userId = (await userNamed(who.value, signal)).id;
  }
  const name = (username, id) => (username ? `@${username}` : id || "—");
  async function load(reset) {
    const query = new URLSearchParams({ limit: "50" });
    if (action.value) query.set("action", action.value);
    if (userId) query.set("user_id", userId);
    if (!reset && cursor) query.set("cursor", cursor);
    const page = await api.api("GET", `${ADMIN}/audit?${query}`, { signal });
    if (reset) replace(body);
    body.append(
      ...page.items.map((r) =>
        h(
          "tr",
          { "data-record-id": r.id },
          h("td", {}, formatTime(r.created_at)),
          h("td", {}, r.action),
          h("td", {}, r.actor_id ? name(r.actor_username, r.actor_id) : "system"),
          h("td", {}, r.target_type === "user" ? name(r.target_username, r.target_id) : `${r.target_type || ""} ${r.target_id || ""}`.trim()),
          h("td", {}, r.ip || ""),
          h("td", {}, h("code", { class: "details" }, Object.keys(r.details).length ? JSON.stringify(r.details) : "")),
        ),
      ),
    );
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No records.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    status.textContent = userId ? `Records by or about ${who.value.startsWith("@") ? who.value : `@${who.value}`}.` : "";
  }
  const apply = h("button", { type: "submit", class: "primary" }, "Filter");
  const form = h(
    "form",
    {
      class: "explore-filters",
      "aria-label": "Filter the audit log",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          userId = who.value.trim() ? (await userNamed(who.value, signal)).id : null;
          await load(true);
        }, apply);
      },
    },
    h("div", {}, field("Action", action)),
    h("div", {}, field("User", who, "A username; empty for everyone.")),
    h("div", { class: "form-end" }, apply),
  );
  action.addEventListener("change", () => guarded(() => load(true)));
  more.addEventListener("click", () => guarded(() => load(false), more));
  replace(panel, form, status, table("Audit log", ["When", "Action", "By", "About", "IP", "Details"], body), more);
  await load(true);
}

// ---- quotas --------------------------------------------------------------------------------

async function quotasTab(panel, signal) {
  const who = h("input", { name: "user", autocomplete: "off", required: true, maxlength: 32 });
  const find = h("button", { type: "submit", class: "primary" }, "Show quota");
  const result = h("div", { class: "quota", "aria-live": "polite" });
  async function show(username) {
    const user = await userNamed(username, signal);
    const quota = await api.api("GET", `/api/v1/usage/quotas/${user.id}`, { signal });
    const tokens = h("input", { type: "number", min: 0, step: 1, name: "daily_tokens", value: quota.daily_tokens ?? "" });
    const save = h("button", { type: "submit", class: "primary" }, "Save quota");
    const reset = h("button", { type: "button" }, "Use the default");
    const saved = h("p", { class: "status-line", role: "status" });
    const describe = (q) => `@${user.username}: ${q.daily_tokens === null ? "unlimited" : `${q.daily_tokens} tokens a day`}, ${q.used_today} used today.`;
    const summary = h("p", { class: "quota-summary" }, describe(quota));
    const put = async (value) => {
      const updated = await api.api("PUT", `/api/v1/usage/quotas/${user.id}`, { body: { daily_tokens: value } });
      summary.textContent = describe(updated);
      tokens.value = updated.daily_tokens ?? "";
      saved.textContent = "Quota saved.";
    };
    reset.addEventListener("click", () => guarded(() => put(null), reset));
    replace(
      result,
      h(
        "form",
        {
          class: "card",
          "aria-label": `Quota of @${user.username}`,
          onsubmit: (event) => {
            event.preventDefault();
            if (tokens.value === "") {
              guarded(() => put(null), save);
              return;
            }
            guarded(() => put(Number(tokens.value)), save);
          },
        },
        summary,
        field("Daily token quota", tokens, "Tokens a day; empty for the default."),
        h("div", { class: "actions" }, save, reset),
        saved,
      ),
    );
  }
  const form = h(
    "form",
    {
      class: "explore-filters",
      "aria-label": "Find a user's quota",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(() => show(who.value), find);
      },
    },
    h("div", {}, field("Username", who)),
    h("div", { class: "form-end" }, find),
  );
  replace(panel, form, result);
  const preset = hashQuery().get("user");
  if (preset) {
    who.value = preset;
    await show(preset);
  }
}

// ---- moderation -----------------------------------------------------------------------------

/** Local midnight of a yyyy-mm-dd day, `days` later, as the API's RFC 3339 timestamp. */
function dayStart(day, days = 0) {
  const start = new Date(`${day}T00:00`);
  start.setDate(start.getDate() + days);
  return start.toISOString();
}

function messageRow(m) {
  // The text goes in as a text node (h() never parses HTML): what users and models wrote is
  // shown exactly, markup included.
  const title = m.conversation_title || "Untitled conversation";
  return h(
    "tr",
    { "data-message-id": m.id },
    h("td", { class: "nowrap" }, formatTime(m.created_at)),
    h(
      "td",
      { class: "nowrap" },
      m.author_username ? h("a", { href: `#/people/${m.author_username}` }, `@${m.author_username}`) : h("span", { class: "muted" }, "deleted account"),
      h("div", { class: "muted" }, m.role),
    ),
    h("td", {}, m.model_ref || h("span", { class: "muted" }, "—")),
    h(
      "td",
      {},
      h("a", { href: `#/admin/moderation?conversation=${m.conversation_id}`, "aria-label": `Messages of the conversation “${title}”` }, title),
    ),
    h("td", {}, h("div", { class: "moderated-text" }, m.content), m.status === "complete" ? null : h("div", { class: "muted" }, m.status)),
  );
}

async function moderationTab(panel, signal) {
  const params = hashQuery();
  const conversationId = params.get("conversation");
  const q = h("input", { type: "search", name: "q", autocomplete: "off", maxlength: 200, value: params.get("q") || "" });
  const who = h("input", { name: "user", autocomplete: "off", maxlength: 32, value: params.get("user") || "" });
  const model = h("input", { name: "model", autocomplete: "off", maxlength: 100, placeholder: "owner/name", pattern: "\\S+/\\S+" });
  const role = h("select", { name: "role" }, h("option", { value: "" }, "Any role"), h("option", { value: "user" }, "user"), h("option", { value: "assistant" }, "assistant"));
  const since = h("input", { type: "date", name: "since" });
  const until = h("input", { type: "date", name: "until" });
  const body = h("tbody");
  const status = h("p", { class: "status-line", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "More messages");
  let cursor = null;
  let author = { name: "", id: null }; // the user filter, resolved once per name
  async function filters() {
    const name = who.value.trim();
    if (name !== author.name) author = { name, id: name ? (await userNamed(name, signal)).id : null };
    const query = new URLSearchParams();
    if (q.value.trim()) query.set("q", q.value.trim());
    if (author.id) query.set("author_id", author.id);
    if (model.value.trim()) query.set("model_ref", model.value.trim());
    if (role.value) query.set("role", role.value);
    if (since.value) query.set("since", dayStart(since.value));
    if (until.value) query.set("until", dayStart(until.value, 1)); // the whole last day
    if (conversationId) query.set("conversation_id", conversationId);
    return query;
  }
  const exported = h("p", { class: "status-line", role: "status" });
  let shown = null; // the filters of the rows shown: what "More" pages on and the export reads
  async function load(reset) {
    if (reset || !shown) {
      shown = await filters();
      exported.textContent = "";
    }
    const query = new URLSearchParams(shown);
    query.set("limit", "25");
    if (!reset && cursor) query.set("cursor", cursor);
    const page = await api.api("GET", `${ADMIN}/messages?${query}`, { signal });
    if (reset) replace(body);
    body.append(...page.items.map(messageRow));
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No message matches.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (conversationId) {
      const title = page.items[0]?.conversation_title;
      replace(status, title ? `Messages of the conversation “${title}”, newest first. ` : "Messages of one conversation. ", h("a", { href: "#/admin/moderation" }, "Every conversation"));
    }
  }
  const search = searchForm({
    label: "Message search",
    fieldLabel: "Search messages",
    hint: 'Words, "a phrase", or, -word: as a web search reads them.',
    input: q,
    more,
    load,
  });
  const apply = h("button", { type: "submit", class: "primary" }, "Filter");
  const filterForm = h(
    "form",
    {
      class: "explore-filters",
      "aria-label": "Filter the messages",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(() => load(true), apply);
      },
    },
    h("div", {}, field("Author", who, "A username; empty for everyone.")),
    h("div", {}, field("Model", model, "owner/name; empty for any.")),
    h("div", {}, field("Role", role)),
    h("div", {}, field("From", since)),
    h("div", {}, field("To", until)),
    h("div", { class: "form-end" }, apply),
  );
  role.addEventListener("change", () => guarded(() => load(true)));
  const exportCsv = h("button", { type: "button" }, "Export CSV");
  exportCsv.addEventListener("click", () =>
    guarded(async () => {
      // A download through fetch: the export, like every admin call, needs the session's token.
      await download(`${ADMIN}/messages/export?${shown || (await filters())}`, "messages.csv");
      exported.textContent = "Exported the matching messages as CSV.";
    }, exportCsv),
  );
  const results = table("Messages", ["When", "Author", "Model", "Conversation", "Message"], body);
  results.firstChild.classList.add("moderation-table");
  replace(
    panel,
    search,
    filterForm,
    h("div", { class: "row-actions moderation-actions" }, exportCsv, exported),
    status,
    results,
    more,
  );
  await load(true);
}

export async function renderAdmin(view, tab = "users") {
  const me = api.user();
  if (me.role !== "admin") {
    replace(view, h("h1", {}, "Admin"), h("p", { role: "alert", class: "error" }, "This page is for administrators; your account is not one."));
    return undefined;
  }
  const page = new AbortController();
  const panel = h("div", { class: "admin-panel" });
  replace(
    view,
    h("h1", {}, "Admin"),
    h(
      "nav",
      { class: "tabs subnav", "aria-label": "Admin sections" },
      TABS.map(([key, label]) => h("a", { href: `#/admin/${key}`, "aria-current": key === tab ? "page" : null }, label)),
    ),
    h("section", { "aria-label": TABS.find(([key]) => key === tab)[1] }, panel),
  );
  const tabs = { users: usersTab, audit: auditTab, quotas: quotasTab, moderation: moderationTab };
  await tabs[tab](panel, page.signal);
  return () => page.abort();
}
