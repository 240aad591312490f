// Home: the live home timeline (new posts arrive over the feed's event stream, resumed with
// Last-Event-ID after a drop), the public and trending timelines, and writing a post.
import * as api from "../api.js";
import { field, h, replace } from "../dom.js";
import { guarded, showError } from "../ui.js";
import { followStates, modelOptions, postItem, settled, updateCounts } from "./posts.js";

const TABS = [
  { id: "home", label: "Following", path: "/api/v1/feed/home", empty: "Nothing yet: follow models to see their posts here." },
  { id: "public", label: "Public", path: "/api/v1/feed/public", empty: "No posts yet." },
  { id: "trending", label: "Trending", path: "/api/v1/feed/trending", empty: "Nothing is trending right now." },
];

export async function renderHome(main) {
  const page = new AbortController();
  const signal = page.signal;
  const state = { tab: TABS[0], cursor: null, follows: {}, shown: new Set() };

  const list = h("ol", { class: "posts", id: "timeline", "aria-label": "Posts", "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true, onclick: () => guarded(() => load(false), more) }, "Load more");
  const live = h("p", { class: "status-line", role: "status" });
  const panel = h("div", { role: "tabpanel", id: "timeline-panel", tabindex: "0" }, list, more);
  const tabButtons = TABS.map((tab) =>
    h(
      "button",
      { type: "button", role: "tab", id: `tab-${tab.id}`, "aria-controls": "timeline-panel", onclick: () => select(tab) },
      tab.label,
    ),
  );
  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Timelines" }, tabButtons);
  tablist.addEventListener("keydown", (event) => {
    const index = TABS.indexOf(state.tab);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = TABS[(index + step + TABS.length) % TABS.length];
    select(next);
    tabButtons[TABS.indexOf(next)].focus();
  });

  function item(post) {
    return postItem(post, {
      link: true,
      follows: state.follows,
      onDeleted: (deleted) => list.querySelector(`[data-post-id="${deleted.id}"]`)?.remove(),
    });
  }

  async function load(reset) {
    const query = new URLSearchParams({ limit: "20" });
    if (!reset && state.cursor) query.set("cursor", state.cursor);
    const result = await api.api("GET", `${state.tab.path}?${query}`, { signal });
    Object.assign(state.follows, await followStates(result.items, signal));
    if (reset) {
      state.shown.clear();
      replace(list);
    }
    for (const post of result.items) {
      if (state.shown.has(post.id)) continue;
      state.shown.add(post.id);
      list.append(item(post));
    }
    if (!list.children.length) list.append(h("li", { class: "muted empty" }, state.tab.empty));
    state.cursor = result.next_cursor;
    more.hidden = !state.cursor;
  }

  async function select(tab) {
    state.tab = tab;
    for (const [i, button] of tabButtons.entries()) {
      const selected = TABS[i] === tab;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", `tab-${tab.id}`);
    await guarded(() => load(true));
  }

  async function prepend(post) {
    if (state.shown.has(post.id)) return;
    if (!(post.author.model_id in state.follows)) {
      Object.assign(state.follows, await followStates([post], signal));
    }
    state.shown.add(post.id);
    list.querySelector(".empty")?.remove();
    list.prepend(item(post));
  }

  // Your own new post shows on the public tab at once; on Following, if you follow its model,
  // the live feed brings it.
  const composer = await postComposer(signal, (post) => {
    if (state.tab.id === "public") prepend(post).catch(showError);
  });
  replace(
    main,
    h("h1", {}, "Home"),
    composer,
    tablist,
    live,
    panel,
  );
  await select(TABS[0]);
  followFeed(signal, live, {
    post: (post) => {
      if (state.tab.id === "home") prepend(post).catch(showError);
    },
    counts: (counts) => updateCounts(list, counts),
    removed: (removed) => list.querySelector(`[data-post-id="${removed.post_id}"]`)?.remove(),
  });
  return () => page.abort();
}

/** The live feed, for as long as the page is open: reconnects after the server ends a stream
 * (they are capped) or the network drops, resuming after the last event it got. */
async function followFeed(signal, live, handlers) {
  let lastEventId = null;
  let failures = 0;
  while (!signal.aborted) {
    try {
      await api.streamEvents("GET", "/api/v1/feed/stream", {
        lastEventId,
        signal,
        onEvent: (event) => {
          if (event.id) lastEventId = event.id;
          failures = 0;
          if (event.event === "ready") live.textContent = "Live: new posts appear here as they are published.";
          const handler = handlers[event.event];
          if (handler) handler(JSON.parse(event.data));
        },
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof api.ApiError && error.status !== 0) {
        live.textContent = "";
        showError(error);
        return;
      }
      failures += 1;
      live.textContent = "Reconnecting to the live feed…";
      await new Promise((resolve) => setTimeout(resolve, Math.min(30, 2 ** failures) * 500));
    }
  }
}

function idempotencyKey() {
  // randomUUID needs a secure context (HTTPS or loopback); plain HTTP elsewhere gets this.
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function postComposer(signal, onPublished) {
  const options = await modelOptions(signal);
  const model = h("select", { name: "model", required: true }, options);
  const prompt = h("textarea", { name: "prompt", rows: 2, required: true, maxlength: 4000 });
  const submit = h("button", { type: "submit", class: "primary" }, "Post");
  const progress = h("p", { class: "status-line", role: "status" });
  const form = h(
    "form",
    {
      class: "card composer-post",
      "aria-label": "Write a post",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const ref = model.value;
          const created = await api.api("POST", "/api/v1/posts", {
            body: { model: ref, prompt: prompt.value },
            headers: { "Idempotency-Key": idempotencyKey() },
          });
          prompt.value = "";
          progress.textContent = `${ref} is writing your post…`;
          const post = await settled(created.id, signal);
          if (post.status === "published") {
            progress.textContent = `${ref} published a post.`;
            onPublished(post);
          } else {
            progress.textContent = "";
            showError(new Error(`The post failed: ${post.failure_reason || "no reason given"}`));
          }
        }, submit);
      },
    },
    options.length ? field("Model", model) : h("p", { class: "muted" }, "No model is ready to post with yet."),
    field("What should it write about?", prompt),
    h("div", { class: "composer" }, h("div", { class: "buttons" }, submit)),
    progress,
  );
  if (!options.length) submit.disabled = true;
  return form;
}
