// A person's profile: who they are, follow/unfollow, their models, who follows them and whom
// they follow.
import * as api from "../api.js";
import { formatTime, h, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { followButton, modelCard } from "./explore.js";

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function followList(username, which, label, signal) {
  const list = h("ul", { class: "follow-list", "aria-label": label });
  const more = h("button", { type: "button", hidden: true }, `More ${label.toLowerCase()}`);
  let cursor = null;
  async function load() {
    const query = new URLSearchParams({ limit: "20" });
    if (cursor) query.set("cursor", cursor);
    const page = await api.api("GET", `/api/v1/users/${username}/${which}?${query}`, { signal });
    list.append(
      ...page.items.map((entry) =>
        h("li", {}, h("a", { href: `#/people/${entry.user.username}` }, entry.user.display_name || entry.user.username), h("span", { class: "muted" }, ` @${entry.user.username}`)),
      ),
    );
    if (!list.children.length) list.append(h("li", { class: "muted" }, "Nobody yet."));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => guarded(load, more));
  return { element: h("div", {}, h("h2", {}, label), list, more), load };
}

export async function renderPerson(view, username) {
  const page = new AbortController();
  const signal = page.signal;
  const person = await api.api("GET", `/api/v1/users/${username}`, { signal });
  const me = api.user();
  const followers = h("span", { class: "followers" }, plural(person.followers_count, "follower", "followers"));
  const models = h("ul", { class: "model-list", "aria-label": `Models by @${person.username}` });
  const moreModels = h("button", { type: "button", hidden: true }, "More models");
  let modelCursor = null;
  async function loadModels() {
    const query = new URLSearchParams({ owner: person.username, limit: "12" });
    if (modelCursor) query.set("cursor", modelCursor);
    const result = await api.api("GET", `/api/v1/models?${query}`, { signal });
    models.append(...result.items.map(modelCard));
    if (!models.children.length) models.append(h("li", { class: "muted" }, "No models yet."));
    modelCursor = result.next_cursor;
    moreModels.hidden = !modelCursor;
  }
  moreModels.addEventListener("click", () => guarded(loadModels, moreModels));
  const followerList = followList(person.username, "followers", "Followers", signal);
  const followingList = followList(person.username, "following", "Following", signal);
  const self = me && me.username === person.username;
  replace(
    view,
    h(
      "section",
      { class: "card profile", "aria-labelledby": "person-title" },
      h("h1", { id: "person-title" }, person.display_name || person.username),
      h("p", { class: "muted" }, `@${person.username}`, person.is_model_developer ? " · model developer" : "", ` · joined ${formatTime(person.created_at)}`),
      person.bio ? h("p", { class: "bio" }, person.bio) : null,
      h("p", {}, followers, " · ", plural(person.following_count, "following", "following")),
      self
        ? h("a", { href: "#/account" }, "Edit your profile")
        : followButton(person, (state) => {
            followers.textContent = plural(state.followers_count, "follower", "followers");
          }),
    ),
    h("section", { "aria-labelledby": "their-models" }, h("h2", { id: "their-models" }, "Models"), models, moreModels),
    h("div", { class: "follow-lists" }, followerList.element, followingList.element),
  );
  await Promise.all([loadModels(), followerList.load(), followingList.load()]);
  return () => page.abort();
}
