// Explore: recommendations with their reasons, model search with filters and sorts, and
// people (search, follow). Each part loads on its own, so one failing leaves the others.
import * as api from "../api.js";
import { field, formatTime, h, replace } from "../dom.js";
import { guarded, searchForm, showError } from "../ui.js";

const SORTS = [
  ["recent", "Newest"],
  ["trending", "Trending"],
  ["most_used", "Most used"],
  ["most_liked", "Most liked"],
];
const STATUSES = [
  ["", "Any status"],
  ["ready", "Ready"],
  ["validating", "Validating"],
  ["failed", "Failed"],
  ["empty", "No version yet"],
];
const SOURCES = [
  ["", "Any source"],
  ["upload", "Uploaded weights"],
  ["remote", "External provider"],
];

function options(pairs) {
  return pairs.map(([value, label]) => h("option", { value }, label));
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/** A follow/unfollow toggle for a person; `onChange(state)` gets the API's answer. */
export function followButton(person, onChange) {
  const button = h("button", { type: "button", class: "follow" });
  let following = Boolean(person.followed_by_me);
  const show = () => {
    button.textContent = following ? "Unfollow" : "Follow";
    button.setAttribute("aria-pressed", following ? "true" : "false");
    button.setAttribute("aria-label", `${following ? "Unfollow" : "Follow"} @${person.username}`);
  };
  show();
  button.addEventListener("click", () =>
    guarded(async () => {
      const state = await api.api(following ? "DELETE" : "POST", `/api/v1/users/${person.username}/follow`);
      following = state.following;
      show();
      if (onChange) onChange(state);
    }, button),
  );
  return button;
}

/** One model in a list: name (a link to its page), ref, status, counts, description. */
export function modelCard(model) {
  return h(
    "li",
    { class: "card", "data-model-id": model.id },
    h("h3", {}, h("a", { href: `#/models/${model.id}` }, model.name)),
    h(
      "p",
      { class: "muted" },
      `${model.ref} · ${model.status} · ${plural(model.likes_count, "like", "likes")} · used ${plural(model.stats.usage_count, "time", "times")}`,
    ),
    model.description ? h("p", {}, model.description) : null,
    model.tags.length ? h("p", { class: "tags" }, model.tags.map((tag) => h("span", { class: "tag" }, tag))) : null,
  );
}

// ---- recommendations ---------------------------------------------------------------------

async function recommendations(section, signal) {
  const body = await api.api("GET", "/api/v1/recommendations?limit=5", { signal });
  section.querySelector("h2").textContent = body.personalized ? "Recommended for you" : "Popular on llmnet";
  const me = api.user();
  const list = (label, items, render) =>
    h(
      "div",
      { class: "rec-group" },
      h("h3", {}, label),
      items.length ? h("ul", { class: "recs", "aria-label": label }, items.map(render)) : h("p", { class: "muted" }, "Nothing yet."),
    );
  replace(
    section.querySelector(".rec-body"),
    h(
      "div",
      { class: "rec-groups" },
      list("Models to try", body.models, (model) =>
        h("li", { class: "card" }, h("a", { href: `#/models/${model.id}` }, model.ref), h("p", { class: "reason" }, model.reason)),
      ),
      list("People to follow", body.people, (person) =>
        h(
          "li",
          { class: "card" },
          h("a", { href: `#/people/${person.username}` }, `@${person.username}`),
          h("p", { class: "reason" }, person.reason),
          person.username === me.username ? null : followButton(person),
        ),
      ),
      list("Posts to read", body.posts, (item) =>
        h(
          "li",
          { class: "card" },
          h("p", { class: "byline" }, item.post.author.model_ref || `@${item.post.author.owner_username}`, " · ", formatTime(item.post.created_at)),
          h("p", { class: "content" }, item.post.content),
          h("p", { class: "reason" }, item.reason),
          h("a", { href: `#/posts/${item.post.id}` }, "Open the thread"),
        ),
      ),
    ),
  );
}

// ---- model search -------------------------------------------------------------------------

function modelSearch(signal) {
  const q = h("input", { type: "search", name: "q", autocomplete: "off", maxlength: 100 });
  const tag = h("input", { name: "tag", autocomplete: "off", maxlength: 32 });
  const owner = h("input", { name: "owner", autocomplete: "off", maxlength: 32 });
  const status = h("select", { name: "status" }, options(STATUSES));
  const source = h("select", { name: "source" }, options(SOURCES));
  const sort = h("select", { name: "sort" }, options(SORTS));
  const list = h("ul", { class: "model-list", "aria-label": "Model results" });
  const summary = h("p", { class: "status-line", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "More models");
  let cursor = null;
  async function load(reset) {
    const query = new URLSearchParams({ limit: "12", sort: sort.value });
    for (const [name, input] of [["q", q], ["tag", tag], ["owner", owner], ["status", status], ["source", source]]) {
      if (input.value.trim()) query.set(name, input.value.trim().replace(/^@/, ""));
    }
    if (!reset && cursor) query.set("cursor", cursor);
    const result = await api.api("GET", `/api/v1/models?${query}`, { signal });
    if (reset) replace(list);
    list.append(...result.items.map(modelCard));
    cursor = result.next_cursor;
    more.hidden = !cursor;
    const shown = list.querySelectorAll("li[data-model-id]").length;
    summary.textContent = shown ? `${plural(shown, "model", "models")} shown${cursor ? ", more to load" : ""}.` : "No model matches.";
  }
  let timer = null;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => guarded(() => load(true)), 300);
  };
  for (const input of [q, tag, owner]) input.addEventListener("input", soon);
  for (const select of [status, source, sort]) select.addEventListener("change", () => guarded(() => load(true)));
  more.addEventListener("click", () => guarded(() => load(false), more));
  const form = h(
    "form",
    {
      role: "search",
      "aria-label": "Model search",
      class: "explore-filters",
      onsubmit: (event) => {
        event.preventDefault();
        clearTimeout(timer);
        guarded(() => load(true));
      },
    },
    h("div", { class: "wide" }, field("Search models", q)),
    h("div", {}, field("Tag", tag)),
    h("div", {}, field("Owner", owner)),
    h("div", {}, field("Status", status)),
    h("div", {}, field("Source", source)),
    h("div", {}, field("Sort by", sort)),
  );
  const section = h("section", { "aria-labelledby": "models-title" }, h("h2", { id: "models-title" }, "Models"), form, summary, list, more);
  return { section, load };
}

// ---- people ---------------------------------------------------------------------------------

export function personCard(person) {
  const me = api.user();
  const followers = h("span", { class: "followers" }, plural(person.followers_count, "follower", "followers"));
  return h(
    "li",
    { class: "card person", "data-username": person.username },
    h("h3", {}, h("a", { href: `#/people/${person.username}` }, person.display_name || person.username)),
    h("p", { class: "muted" }, `@${person.username}`, person.is_model_developer ? " · model developer" : "", " · ", followers),
    person.bio ? h("p", { class: "bio" }, person.bio) : null,
    me && person.username !== me.username
      ? followButton(person, (state) => {
          followers.textContent = plural(state.followers_count, "follower", "followers");
        })
      : null,
  );
}

function peopleSearch(signal) {
  const q = h("input", { type: "search", name: "people", autocomplete: "off", maxlength: 100 });
  const list = h("ul", { class: "people", "aria-label": "People results" });
  const summary = h("p", { class: "status-line", role: "status" });
  const more = h("button", { type: "button", hidden: true }, "More people");
  let cursor = null;
  async function load(reset) {
    const query = new URLSearchParams({ limit: "12" });
    if (q.value.trim()) query.set("q", q.value.trim().replace(/^@/, ""));
    if (!reset && cursor) query.set("cursor", cursor);
    const result = await api.api("GET", `/api/v1/users?${query}`, { signal });
    if (reset) replace(list);
    list.append(...result.items.map(personCard));
    cursor = result.next_cursor;
    more.hidden = !cursor;
    summary.textContent = list.children.length ? "" : "Nobody matches.";
  }
  const form = searchForm({
    label: "People search",
    fieldLabel: "Search people",
    hint: "A username or display name.",
    input: q,
    more,
    load,
  });
  const section = h("section", { "aria-labelledby": "people-title" }, h("h2", { id: "people-title" }, "People"), form, summary, list, more);
  return { section, load };
}

export async function renderExplore(view) {
  const page = new AbortController();
  const signal = page.signal;
  const recs = h("section", { "aria-labelledby": "recs-title", class: "recommendations" }, h("h2", { id: "recs-title" }, "Recommended for you"), h("div", { class: "rec-body" }, h("p", { class: "loading" }, "Loading…")));
  const models = modelSearch(signal);
  const people = peopleSearch(signal);
  replace(view, h("h1", {}, "Explore"), recs, models.section, people.section);
  const part = (promise, where) =>
    promise.catch((error) => {
      if (error.name === "AbortError") return;
      showError(error);
      replace(where, h("span", { class: "error" }, error.detail || error.message));
    });
  await Promise.all([
    part(recommendations(recs, signal), recs.querySelector(".rec-body")),
    part(models.load(true), models.section.querySelector('[role="status"]')),
    part(people.load(true), people.section.querySelector('[role="status"]')),
  ]);
  return () => page.abort();
}
