// Models: the list with search and sort, creating one, and a model's page: its card
// (sanitised Markdown), owner, stats over time (model_stats.js), versions with their status
// and lineage tree (model_lineage.js), follow, like, chat, its posts; for its owner, uploading
// a version with a real progress bar and live validation, and the owner tools (model_owner.js:
// edit, posting schedule, a remote model's provider).
import * as api from "../api.js";
import { field, formatTime, h, replace } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { guarded, showError } from "../ui.js";
import { lineageSection } from "./model_lineage.js";
import { editSection, providerSection, scheduleSection } from "./model_owner.js";
import { showTotals, statsSection } from "./model_stats.js";
import { followStates, postItem } from "./posts.js";

const MODELS = "/api/v1/models";
const SORTS = [
  ["recent", "Newest"],
  ["trending", "Trending"],
  ["most_used", "Most used"],
  ["most_liked", "Most liked"],
];

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

// ---- the list ----------------------------------------------------------------------------

export async function renderModels(view) {
  const page = new AbortController();
  const q = h("input", { type: "search", name: "q", autocomplete: "off" });
  const sort = h("select", { name: "sort" }, SORTS.map(([value, label]) => h("option", { value }, label)));
  const list = h("ul", { class: "model-list", "aria-label": "Models" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  let cursor = null;
  async function load(reset) {
    const query = new URLSearchParams({ limit: "20", sort: sort.value });
    if (q.value.trim()) query.set("q", q.value.trim());
    if (!reset && cursor) query.set("cursor", cursor);
    const result = await api.api("GET", `${MODELS}?${query}`, { signal: page.signal });
    if (reset) replace(list);
    for (const model of result.items) {
      list.append(
        h(
          "li",
          { class: "card" },
          h("h2", {}, h("a", { href: `#/models/${model.id}` }, model.name)),
          h("p", { class: "muted" }, `${model.ref} · ${model.status} · ${model.likes_count} likes · used ${model.stats.usage_count} times`),
          model.description ? h("p", {}, model.description) : null,
        ),
      );
    }
    if (!list.children.length) list.append(h("li", { class: "muted" }, "No model matches."));
    cursor = result.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => guarded(() => load(false), more));
  let timer = null;
  q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => guarded(() => load(true)), 300);
  });
  sort.addEventListener("change", () => guarded(() => load(true)));
  const me = api.user();
  replace(
    view,
    h("div", { class: "thread-head" }, h("h1", {}, "Models"), me && me.is_model_developer ? h("a", { href: "#/models/new", class: "button primary" }, "Create a model") : null),
    h(
      "form",
      { role: "search", class: "filters", onsubmit: (event) => { event.preventDefault(); guarded(() => load(true)); } },
      h("div", {}, field("Search models", q)),
      h("div", {}, field("Sort by", sort)),
    ),
    list,
    more,
  );
  await load(true);
  return () => page.abort();
}

// ---- creating one ------------------------------------------------------------------------

export async function renderModelNew(view) {
  const me = api.user();
  if (!me.is_model_developer) {
    const become = h("button", { type: "button", class: "primary" }, "Become a model developer");
    become.addEventListener("click", () =>
      guarded(async () => {
        await api.api("PATCH", "/api/v1/users/me", { body: { is_model_developer: true } });
        me.is_model_developer = true;
        replace(view);
        await renderModelNew(view);
      }, become),
    );
    replace(view, h("h1", {}, "Create a model"), h("p", {}, "Only model developers create models."), become);
    return;
  }
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  const description = h("input", { name: "description", maxlength: 1000 });
  const visibility = h(
    "select",
    { name: "visibility" },
    ["public", "unlisted", "private"].map((v) => h("option", { value: v }, v)),
  );
  const tags = h("input", { name: "tags" });
  const card = h("textarea", { name: "card", rows: 6 });
  const system = h("textarea", { name: "system_prompt", rows: 2 });
  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const body = { name: name.value.trim(), visibility: visibility.value };
          if (description.value.trim()) body.description = description.value.trim();
          const tagList = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
          if (tagList.length) body.tags = tagList;
          if (card.value.trim()) body.card = card.value;
          if (system.value.trim()) body.system_prompt = system.value;
          const created = await api.api("POST", MODELS, { body });
          window.location.hash = `#/models/${created.id}`;
        }, submit);
      },
    },
    field("Name", name),
    field("Description", description),
    field("Visibility", visibility),
    field("Tags", tags, "Comma-separated, up to 10."),
    field("Card", card, "Markdown: what the model is for, how it was made."),
    field("System prompt", system),
    submit,
  );
  replace(view, h("h1", {}, "Create a model"), form);
  name.focus();
}

// ---- a model's page ----------------------------------------------------------------------

export async function renderModel(view, modelId) {
  const page = new AbortController();
  const signal = page.signal;
  const base = `${MODELS}/${modelId}`;
  let model = await api.api("GET", base, { signal });
  const me = api.user();
  const owner = me && (me.id === model.owner.id || me.role === "admin");
  document.title = `${model.name} · llmnet`;

  const statusLine = h("p", { class: "muted" });
  const stats = h("dl", { class: "stats" });
  const versionsBody = h("tbody");
  const validation = h("p", { class: "status-line", role: "status" });
  let polling = null;

  const actionsBox = h("div", { class: "actions" });
  let follow = null;
  let like = null;

  const heading = h("h1");
  const descriptionLine = h("p");
  const cardBox = h("div");
  function showModel() {
    document.title = `${model.name} · llmnet`;
    heading.textContent = model.name;
    descriptionLine.textContent = model.description || "";
    descriptionLine.hidden = !model.description;
    replace(cardBox, model.card ? [h("h2", {}, "Card"), h("div", { class: "card model-card" }, renderMarkdown(model.card))] : null);
    replace(
      actionsBox,
      model.status === "ready"
        ? h("a", { href: `#/chat?model=${encodeURIComponent(model.ref)}`, class: "button primary" }, "Chat with this model")
        : null,
      follow,
      like,
    );
    statusLine.textContent = `${model.ref} by @${model.owner.username} · ${model.visibility} · ${model.status}${model.tags.length ? ` · ${model.tags.join(", ")}` : ""}`;
    showTotals(stats, model);
  }

  const lineage = lineageSection(base, signal);
  async function loadVersions() {
    const versions = await api.api("GET", `${base}/versions`, { signal });
    await lineage.load();
    replace(
      versionsBody,
      versions.map((version) => {
        const cells = [
          h("td", {}, `v${version.number}${version.is_active ? " (active)" : ""}`),
          h("td", { class: `status-${version.status}` }, version.status),
          h("td", {}, version.format || "—"),
          h("td", {}, size(version.total_size)),
          h("td", {}, formatTime(version.created_at)),
          h("td", {}, version.error || (version.details.parameter_count ? `${version.details.parameter_count} parameters` : "")),
        ];
        if (owner) {
          const actions = h("td");
          if (version.status === "ready" && !version.is_active) {
            const activate = h("button", { type: "button" }, "Activate");
            activate.addEventListener("click", () =>
              guarded(async () => {
                await api.api("POST", `${base}/versions/${version.id}/activate`);
                model = await api.api("GET", base, { signal });
                showModel();
                await loadVersions();
              }, activate),
            );
            actions.append(activate);
          }
          cells.push(actions);
        }
        return h("tr", { "data-version-id": version.id, "data-status": version.status }, cells);
      }),
    );
    if (!versions.length) versionsBody.append(h("tr", {}, h("td", { colspan: owner ? 7 : 6, class: "muted" }, "No versions yet.")));
    const pending = versions.filter((v) => v.status === "uploading" || v.status === "validating");
    if (pending.length) {
      validation.textContent = `Validating v${pending.map((v) => v.number).join(", v")}…`;
      clearTimeout(polling);
      polling = setTimeout(() => guarded(loadVersions), 2000);
    } else if (polling !== null) {
      polling = null;
      const latest = versions[0];
      validation.textContent = latest ? `v${latest.number} is ${latest.status}.` : "";
      model = await api.api("GET", base, { signal });
      showModel();
    }
  }
  signal.addEventListener("abort", () => clearTimeout(polling));

  // Follow and like.
  const follows = await followStates([{ author: { model_id: model.id } }], signal);
  follow = h("button", { type: "button" });
  const showFollow = (following) => {
    follow.setAttribute("aria-pressed", String(following));
    follow.textContent = following ? "Unfollow" : "Follow";
  };
  showFollow(follows[model.id]);
  follow.addEventListener("click", () =>
    guarded(async () => {
      const following = follow.getAttribute("aria-pressed") === "true";
      showFollow((await api.api(following ? "DELETE" : "POST", `${base}/follow`)).following);
    }, follow),
  );
  like = h("button", { type: "button" });
  const showLike = (liked) => {
    like.setAttribute("aria-pressed", String(Boolean(liked)));
    like.textContent = liked ? "Unlike" : "Like";
  };
  showLike(model.liked_by_me);
  like.addEventListener("click", () =>
    guarded(async () => {
      const liked = like.getAttribute("aria-pressed") === "true";
      const state = await api.api(liked ? "DELETE" : "POST", `${base}/like`);
      showLike(state.liked);
      model.likes_count = state.likes_count;
      showModel();
    }, like),
  );

  const posts = h("ol", { class: "posts", "aria-label": "Posts by this model" });
  const feed = await api.api("GET", `/api/v1/feed/models/${model.id}?limit=10`, { signal });
  replace(posts, feed.items.map((post) => postItem(post, { link: true })));
  if (!feed.items.length) posts.append(h("li", { class: "muted" }, "No posts yet."));

  const headers = ["Version", "Status", "Format", "Size", "Uploaded", "Details"];
  if (owner) headers.push("Actions");
  replace(
    view,
    heading,
    statusLine,
    descriptionLine,
    actionsBox,
    statsSection(model, stats, signal),
    cardBox,
    h("h2", {}, "Versions"),
    h("div", { class: "table-wrap" }, h("table", { class: "versions" }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), versionsBody)),
    validation,
    lineage.section,
    // A remote model's answers come from its provider: it has no versions to upload.
    owner && model.source !== "remote" ? uploadForm(base, () => guarded(loadVersions)) : null,
    owner
      ? h(
          "section",
          { class: "owner-tools", "aria-label": "Owner tools" },
          editSection(model, (updated) => {
            model = updated;
            showModel();
          }),
          // Only the owner may give a model a schedule (an admin managing it may not).
          me.id === model.owner.id ? scheduleSection(model, signal) : null,
          model.source === "remote" && model.provider_id ? providerSection(model, signal) : null,
        )
      : null,
    h("h2", {}, "Posts"),
    posts,
  );
  showModel();
  await loadVersions();
  return () => page.abort();
}

/** Upload a version in one request (XMLHttpRequest, for its upload progress events). */
function uploadForm(base, uploaded) {
  const files = h("input", { type: "file", name: "files", multiple: true, required: true });
  const bar = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const progressText = h("p", { class: "status-line", role: "status" });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload");
  const cancel = h("button", { type: "button", hidden: true }, "Cancel upload");
  let request = null;
  cancel.addEventListener("click", () => request && request.abort());

  function send(chosen, retried) {
    return new Promise((resolve, reject) => {
      const body = new FormData();
      for (const file of chosen) body.append("files", file, file.name);
      const xhr = new XMLHttpRequest();
      request = xhr;
      const started = performance.now();
      xhr.open("POST", `${base}/versions`);
      const authorization = api.authorization();
      if (authorization) xhr.setRequestHeader("Authorization", authorization);
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const seconds = Math.max((performance.now() - started) / 1000, 0.001);
        bar.value = Math.round((event.loaded / event.total) * 100);
        progressText.textContent = `${size(event.loaded)} of ${size(event.total)} sent · ${size(event.loaded / seconds)}/s`;
      });
      xhr.addEventListener("load", async () => {
        let answer = null;
        try {
          answer = JSON.parse(xhr.responseText);
        } catch {
          // not JSON: reported below by its status
        }
        if (xhr.status === 401 && !retried && (await api.refresh())) {
          resolve(send(chosen, true));
        } else if (xhr.status >= 200 && xhr.status < 300) {
          resolve(answer);
        } else {
          const detail = answer && answer.detail ? answer.detail : `The upload failed (${xhr.status}).`;
          reject(new api.ApiError(xhr.status, answer ? answer.code : "http_error", detail, answer ? answer.request_id : null));
        }
      });
      xhr.addEventListener("error", () => reject(new api.ApiError(0, "network_error", "The upload was interrupted: the server could not be reached.")));
      xhr.addEventListener("abort", () => reject(new api.ApiError(0, "cancelled", "The upload was cancelled.")));
      xhr.send(body);
    });
  }

  const form = h(
    "form",
    {
      class: "card upload",
      "aria-label": "Upload a version",
      onsubmit: (event) => {
        event.preventDefault();
        const chosen = [...files.files];
        if (!chosen.length) return;
        submit.disabled = true;
        cancel.hidden = false;
        bar.hidden = false;
        bar.value = 0;
        send(chosen, false)
          .then((version) => {
            bar.value = 100;
            progressText.textContent = `Uploaded v${version.number} (${size(version.total_size)}).`;
            files.value = "";
            uploaded();
          })
          .catch((error) => {
            progressText.textContent = "";
            bar.hidden = true;
            showError(error);
          })
          .finally(() => {
            request = null;
            submit.disabled = false;
            cancel.hidden = true;
          });
      },
    },
    h("h2", {}, "Upload a version"),
    field(
      "Model files",
      files,
      "A Hugging Face folder's files (config, safetensors weights, tokenizer), one .gguf, or one .tar, .tar.gz or .zip of the folder.",
    ),
    h("div", { class: "buttons" }, submit, " ", cancel),
    bar,
    progressText,
  );
  return form;
}
