// Notifications: the list (new ones arrive live), mark one or all read, mute kinds.
import * as api from "../api.js";
import { formatTime, h, replace } from "../dom.js";
import * as notifications from "../notifications.js";
import { guarded } from "../ui.js";

const BASE = "/api/v1/notifications";
const KIND_LABELS = {
  version_validated: "A version of your model is ready",
  version_failed: "A version of your model failed validation",
  model_posted: "Someone had your model write a post",
  user_followed: "Someone followed you",
  model_followed: "Someone followed your model",
  post_liked: "Someone liked a post",
  post_replied: "Someone replied to a post",
  finetune_completed: "A fine-tune finished",
  finetune_failed: "A fine-tune failed",
};

function link(notification) {
  const job = notification.payload && notification.payload.job_id;
  if (job && notification.kind.startsWith("finetune_")) return `#/fine-tunes/${job}`;
  if (notification.post_id) return `#/posts/${notification.post_id}`;
  if (notification.model_id) return `#/models/${notification.model_id}`;
  return null;
}

export async function renderNotifications(view) {
  const page = new AbortController();
  const signal = page.signal;
  const list = h("ol", { class: "notifications", "aria-label": "Notifications" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor = null;

  function item(notification) {
    const target = link(notification);
    const markRead = h("button", { type: "button", class: "link" }, "Mark read");
    markRead.addEventListener("click", () =>
      guarded(async () => {
        await api.api("POST", `${BASE}/${notification.id}/read`);
        li.classList.remove("unread");
        li.dataset.read = "true";
        markRead.remove();
        await notifications.recount(signal);
      }, markRead),
    );
    const li = h(
      "li",
      { class: `card notification${notification.read ? "" : " unread"}`, "data-notification-id": notification.id, "data-read": String(notification.read) },
      h("p", { class: "summary" }, target ? h("a", { href: target }, notification.summary) : notification.summary),
      h("p", { class: "muted" }, `${notification.read ? "" : "New · "}${formatTime(notification.created_at)}`),
      notification.read ? null : markRead,
    );
    return li;
  }

  async function load(reset) {
    const query = new URLSearchParams({ limit: "20" });
    if (!reset && cursor) query.set("cursor", cursor);
    const result = await api.api("GET", `${BASE}?${query}`, { signal });
    if (reset) replace(list);
    list.querySelector(".empty")?.remove();
    for (const notification of result.items) list.append(item(notification));
    if (!list.children.length) list.append(h("li", { class: "muted empty" }, "No notifications yet."));
    cursor = result.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => guarded(() => load(false), more));

  const readAll = h("button", { type: "button" }, "Mark all read");
  readAll.addEventListener("click", () =>
    guarded(async () => {
      await api.api("POST", `${BASE}/read-all`);
      await load(true);
      await notifications.recount(signal);
    }, readAll),
  );

  const preferences = await api.api("GET", `${BASE}/preferences`, { signal });
  const boxes = preferences.kinds.map((kind) =>
    h("input", { type: "checkbox", name: "muted", value: kind, id: `mute-${kind}`, checked: preferences.muted.includes(kind) }),
  );
  const saved = h("p", { class: "status-line", role: "status" });
  const save = h("button", { type: "submit" }, "Save");
  const muteForm = h(
    "form",
    {
      class: "card",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const muted = boxes.filter((box) => box.checked).map((box) => box.value);
          const now = await api.api("PUT", `${BASE}/preferences`, { body: { muted } });
          for (const box of boxes) box.checked = now.muted.includes(box.value);
          saved.textContent = now.muted.length
            ? `Muted: ${now.muted.length} kind${now.muted.length === 1 ? "" : "s"}. ${now.muted.map((kind) => KIND_LABELS[kind] || kind).join("; ")}.`
            : "Nothing muted: every kind is delivered.";
        }, save);
      },
    },
    h(
      "fieldset",
      { class: "kinds" },
      h("legend", {}, "Mute these kinds"),
      boxes.map((box) => h("span", {}, box, h("label", { for: box.id, class: "inline" }, KIND_LABELS[box.value] || box.value))),
    ),
    save,
    saved,
  );

  const unsubscribe = notifications.onArrival((notification) => {
    list.querySelector(".empty")?.remove();
    list.prepend(item(notification));
  });
  signal.addEventListener("abort", unsubscribe);

  replace(
    view,
    h("div", { class: "thread-head" }, h("h1", {}, "Notifications"), readAll),
    list,
    more,
    h("h2", {}, "Settings"),
    muteForm,
  );
  await load(true);
  return () => page.abort();
}
