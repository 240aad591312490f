// Chat: conversations by day with search, a new conversation with a model picker, answers
// streaming in token by token (re-attached after a reload or a network drop), stop,
// regenerate with sibling navigation, per-message metadata and a parameters panel; prompt
// templates, attachments, feedback and export live in the chat_*.js modules beside this one.
import * as api from "../api.js";
import { field, formatDay, h, replace } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { guarded, showError } from "../ui.js";
import { assignAttachments, attachmentList, attachmentPicker } from "./chat_attachments.js";
import { feedbackControls } from "./chat_feedback.js";
import { exportButtons } from "./chat_files.js";
import { templatesPanel } from "./chat_templates.js";
import { jsonTree } from "./viewer.js";

const CONVERSATIONS = "/api/v1/conversations";
// The first message of a conversation just created, sent once its page has opened.
let pendingFirst = null;

export async function renderChat(main, conversationId) {
  const page = new AbortController();
  const sidebar = conversationList(conversationId, page.signal);
  const pane = h("section", { class: "thread", "aria-labelledby": "chat-title" });
  main.append(h("div", { class: "chat" }, sidebar.element, pane));
  const loaded = guarded(() => sidebar.load());
  if (conversationId) {
    await conversationView(pane, conversationId, page.signal, sidebar);
  } else {
    await newConversationView(pane, page.signal);
  }
  await loaded;
  return () => page.abort();
}

// ---- the list ----------------------------------------------------------------------------

function conversationList(activeId, signal) {
  const search = h("input", { type: "search", name: "q", autocomplete: "off" });
  const groups = h("div", { class: "groups" });
  const more = h("button", { type: "button", class: "link", hidden: true }, "Load more");
  let timer = null;
  let cursor = null;
  async function load(reset = true) {
    const q = search.value.trim();
    const query = new URLSearchParams({ limit: "50" });
    if (q) query.set("q", q);
    if (!reset && cursor) query.set("cursor", cursor);
    const result = await api.api("GET", `${CONVERSATIONS}?${query}`, { signal });
    cursor = result.next_cursor;
    more.hidden = !cursor;
    if (reset) replace(groups);
    if (!result.groups.length && reset) {
      groups.append(h("p", { class: "muted" }, q ? "No conversation matches." : "No conversations yet."));
      return;
    }
    for (const group of result.groups) {
      const links = group.items.map((item) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/chat/${item.id}`, "aria-current": item.id === activeId ? "page" : null },
            item.title || "Untitled",
            h("span", { class: "model" }, ` · ${item.model_ref}`),
          ),
        ),
      );
      // A day a page boundary split goes on under its heading.
      const last = groups.lastElementChild;
      if (last && last.dataset.day === group.day) last.querySelector("ul").append(...links);
      else groups.append(h("section", { "data-day": group.day }, h("h2", {}, formatDay(group.day)), h("ul", {}, links)));
    }
  }
  more.addEventListener("click", () => guarded(() => load(false), more));
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => guarded(load), 300);
  });
  const form = h(
    "form",
    { role: "search", onsubmit: (event) => { event.preventDefault(); guarded(load); } },
    field("Search conversations", search),
  );
  const element = h(
    "aside",
    { class: "conversations", "aria-label": "Conversations" },
    h("a", { href: "#/chat", class: "button primary" }, "New conversation"),
    form,
    groups,
    more,
  );
  return { element, load };
}

// ---- parameters --------------------------------------------------------------------------

function parametersPanel(initial = {}) {
  const number = (name, attrs) =>
    h("input", { type: "number", name, inputmode: "decimal", value: initial[name] ?? "", ...attrs });
  const inputs = {
    temperature: number("temperature", { min: 0, max: 2, step: 0.1 }),
    top_k: number("top_k", { min: 0, max: 200, step: 1 }),
    top_p: number("top_p", { min: 0.01, max: 1, step: 0.01 }),
    max_tokens: number("max_tokens", { min: 1, step: 1 }),
  };
  const stop = h("textarea", { name: "stop", rows: 2, value: (initial.stop || []).join("\n") });
  const element = h(
    "details",
    { class: "params card" },
    h("summary", {}, "Parameters"),
    h(
      "div",
      { class: "grid" },
      h("div", {}, field("Temperature", inputs.temperature, "0 to 2; 0 is greedy.")),
      h("div", {}, field("Top-k", inputs.top_k, "0 to 200; 0 is off.")),
      h("div", {}, field("Top-p", inputs.top_p, "Above 0, up to 1.")),
      h("div", {}, field("Max tokens", inputs.max_tokens)),
    ),
    field("Stop sequences", stop, "One per line, at most 4."),
  );
  function values() {
    const result = {};
    for (const [name, input] of Object.entries(inputs)) {
      if (input.value !== "") result[name] = Number(input.value);
    }
    const sequences = stop.value.split("\n").filter((line) => line !== "");
    if (sequences.length) result.stop = sequences;
    return result;
  }
  return { element, values };
}

// ---- a new conversation ------------------------------------------------------------------

async function newConversationView(pane, signal) {
  const models = await api.api("GET", "/api/v1/models?status=ready&limit=100", { signal });
  const picker = h(
    "select",
    { name: "model", required: true },
    models.items.map((model) => h("option", { value: model.ref }, `${model.name} (${model.ref})`)),
  );
  // "Chat with this model" on a model's page links here as #/chat?model=<ref>.
  const wanted = new URLSearchParams(window.location.hash.split("?")[1] || "").get("model");
  if (wanted && models.items.some((model) => model.ref === wanted)) picker.value = wanted;
  const title = h("input", { name: "title", maxlength: 200 });
  const system = h("textarea", { name: "system_prompt", rows: 2 });
  const message = h("textarea", { name: "content", rows: 3, required: true });
  const params = parametersPanel();
  const submit = h("button", { type: "submit", class: "primary" }, "Start");
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const body = { model: picker.value, parameters: params.values() };
          if (title.value.trim()) body.title = title.value.trim();
          if (system.value.trim()) body.system_prompt = system.value;
          const created = await api.api("POST", CONVERSATIONS, { body });
          pendingFirst = { id: created.id, content: message.value };
          window.location.hash = `#/chat/${created.id}`;
        }, submit);
      },
    },
    models.items.length
      ? field("Model", picker)
      : h("p", { class: "muted" }, "No model is ready to chat with yet."),
    field("Title (optional)", title),
    field("System prompt (optional)", system),
    field("Message", message),
    params.element,
    h("div", { class: "composer" }, h("div", { class: "buttons" }, submit)),
  );
  replace(pane, h("h1", { id: "chat-title" }, "New conversation"), form);
  if (!models.items.length) submit.disabled = true;
}

// ---- one conversation --------------------------------------------------------------------

// Version numbers of the models answers came from, by model id (a promise each, asked once).
const versionNumbers = new Map();

function versionsOf(modelId) {
  if (!versionNumbers.has(modelId)) {
    const numbers = api
      .api("GET", `/api/v1/models/${modelId}/versions`)
      .then((versions) => new Map(versions.map((v) => [v.id, v.number])))
      // Versions the caller may not list (a model made private since): the id will do.
      .catch(() => new Map());
    versionNumbers.set(modelId, numbers);
  }
  return versionNumbers.get(modelId);
}

/** What an answer cost and where it came from, as label/value pairs. */
function metadataParts(message) {
  const parts = [];
  if (message.prompt_tokens != null) parts.push(["Prompt", `${message.prompt_tokens} tokens`]);
  if (message.completion_tokens != null) parts.push(["Completion", `${message.completion_tokens} tokens`]);
  if (message.latency_ms != null) parts.push(["Latency", `${(message.latency_ms / 1000).toFixed(2)} s`]);
  if (message.tokens_per_second != null) parts.push(["Speed", `${message.tokens_per_second.toFixed(1)} tokens/s`]);
  if (message.time_to_first_token_ms != null) {
    parts.push(["First token", `after ${Math.round(message.time_to_first_token_ms)} ms`]);
  }
  if (message.model_ref) parts.push(["Model", message.model_ref]);
  parts.push(["Version", message.model_version_id ? `version ${message.model_version_id.slice(0, 8)}` : "external model"]);
  if (message.finish_reason) parts.push(["Finish", message.finish_reason]);
  if (message.trimmed_messages) parts.push(["Trimmed", `${message.trimmed_messages} earlier messages`]);
  if (message.status === "cancelled") parts.push(["Status", "stopped"]);
  return parts;
}

function metadataList(message) {
  const element = h(
    "dl",
    { class: "meta", "aria-label": "Answer details" },
    metadataParts(message).map(([label, value]) =>
      h("div", { class: `meta-${label.toLowerCase().replace(" ", "-")}` }, h("dt", {}, label), h("dd", {}, value)),
    ),
  );
  if (message.model_version_id && message.model_id) {
    // The version's number once known: "version 3 (1a2b3c4d)".
    versionsOf(message.model_id).then((numbers) => {
      const number = numbers.get(message.model_version_id);
      // A version newer than the list read: read it again next time.
      if (number == null) versionNumbers.delete(message.model_id);
      const value = element.querySelector(".meta-version dd");
      if (number != null && value) value.textContent = `version ${number} (${message.model_version_id.slice(0, 8)})`;
    });
  }
  return element;
}

/** Every field of the message as a collapsible tree, built when first opened. */
function metadataTree(message) {
  const details = h("details", { class: "meta-json" }, h("summary", {}, "All details (JSON)"));
  details.addEventListener("toggle", () => {
    if (details.open && details.children.length === 1) details.append(jsonTree(message, { label: "Message details" }));
  });
  return details;
}

async function conversationView(pane, conversationId, signal, sidebar) {
  const base = `${CONVERSATIONS}/${conversationId}`;
  const state = { conversation: null, byId: new Map(), path: [], streaming: null, attachments: [], sentWith: new Map() };

  const heading = h("h1", { id: "chat-title" });
  const modelLine = h("p", { class: "muted" });
  const list = h("ol", { class: "messages", "aria-label": "Messages" });
  const status = h("p", { class: "status-line", role: "status" });
  const input = h("textarea", { name: "content", rows: 3, required: true });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", hidden: true, onclick: () => stopAnswer() }, "Stop");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const form = h(
    "form",
    {
      class: "composer",
      onsubmit: (event) => {
        event.preventDefault();
        const content = input.value;
        if (!content.trim() || state.streaming || send.disabled) return;
        input.value = "";
        const go = () => follow("POST", `${base}/messages`, { content, parameters: params.values(), stream: true });
        if (!attach.busy()) {
          go();
          return;
        }
        // Sent once the files picked for it are in: they go with it.
        send.disabled = true;
        status.textContent = "Sending once the files are uploaded…";
        attach.settled().then(go);
      },
    },
    field("Message", input, "Enter sends; Shift+Enter starts a new line."),
    h("div", { class: "buttons" }, send, stop),
  );
  let params = parametersPanel();

  function setConversation(conversation) {
    state.conversation = conversation;
    state.byId = new Map(conversation.messages.map((m) => [m.id, m]));
    state.path = [...conversation.current_path];
  }

  function pathTo(id) {
    const path = [];
    for (let m = state.byId.get(id); m; m = m.parent_id ? state.byId.get(m.parent_id) : null) {
      path.unshift(m.id);
    }
    return path;
  }

  function siblingsOf(message) {
    return [...state.byId.values()]
      .filter((m) => m.parent_id === message.parent_id && m.role === message.role)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  function contentOf(message) {
    if (message.role === "assistant" && message.status !== "streaming") {
      return h("div", { class: "content" }, renderMarkdown(message.content));
    }
    return h("div", { class: "content plain" }, message.content);
  }

  function messageItem(message) {
    const streaming = message.status === "streaming";
    const who = message.role === "user" ? "You" : message.model_ref || "Model";
    const siblings = siblingsOf(message);
    const index = siblings.findIndex((m) => m.id === message.id);
    const busy = Boolean(state.streaming);
    const nav =
      siblings.length > 1
        ? h(
            "span",
            { class: "siblings", role: "group", "aria-label": message.role === "user" ? "Versions of this message" : "Answers" },
            h("button", { type: "button", "aria-label": "Previous", disabled: busy || index === 0, onclick: (e) => choose(siblings[index - 1], e.currentTarget) }, "‹"),
            h("span", { class: "position" }, `${index + 1}/${siblings.length}`),
            h("button", { type: "button", "aria-label": "Next", disabled: busy || index === siblings.length - 1, onclick: (e) => choose(siblings[index + 1], e.currentTarget) }, "›"),
          )
        : null;
    const actions = [];
    if (nav) actions.push(nav);
    if (message.role === "user") {
      actions.push(h("button", { type: "button", class: "edit", disabled: busy, onclick: (e) => edit(message, e.currentTarget) }, "Edit"));
    }
    let feedback = null;
    if (message.role === "assistant" && !streaming) {
      actions.push(
        h("button", { type: "button", class: "regenerate", disabled: busy, onclick: () => regenerate(message) }, "Regenerate"),
      );
      feedback = feedbackControls(message, `${base}/messages/${message.id}/feedback`, (value, said) => {
        message.feedback = value;
        renderOne(message.id);
        status.textContent = said;
        const item = list.querySelector(`[data-message-id="${message.id}"]`);
        (item?.querySelector('.thumb[aria-pressed="true"]') || item?.querySelector(".thumb"))?.focus();
      });
      actions.push(feedback.group);
    }
    const attached = message.role === "user" ? state.sentWith.get(message.id) || [] : [];
    return h(
      "li",
      { class: `message ${message.role}`, "data-message-id": message.id, "data-status": message.status, "aria-busy": streaming ? "true" : null },
      h("div", { class: "who" }, who),
      contentOf(message),
      attachmentList(base, attached),
      message.error ? h("p", { class: "error" }, message.error) : null,
      message.role === "assistant" && !streaming ? metadataList(message) : null,
      message.role === "assistant" && !streaming ? metadataTree(message) : null,
      actions.length ? h("div", { class: "actions" }, actions) : null,
      feedback?.shown,
    );
  }

  function render() {
    const conversation = state.conversation;
    assign();
    heading.textContent = conversation.title || "New conversation";
    document.title = `${heading.textContent} · llmnet`;
    modelLine.textContent = `With ${conversation.model_ref}`;
    replace(list, state.path.map((id) => messageItem(state.byId.get(id))));
    if (!state.path.length) list.append(h("li", { class: "muted" }, "No messages yet: say something."));
    const streaming = Boolean(state.streaming);
    send.disabled = streaming;
    stop.hidden = !streaming;
    stop.disabled = !(state.streaming && state.streaming.messageId);
  }

  function renderOne(id) {
    const old = list.querySelector(`[data-message-id="${id}"]`);
    if (old) old.replaceWith(messageItem(state.byId.get(id)));
    else render();
  }

  async function choose(sibling, button) {
    await guarded(async () => {
      setConversation(await api.api("PUT", `${base}/current`, { body: { message_id: sibling.id } }));
      render();
    }, button);
  }

  /** Editing a user message sends the new text after the same parent: a new branch, with
   * the old one still there (its sibling). */
  function edit(message, button) {
    const item = button.closest(".message");
    const text = h("textarea", { name: "edit", rows: 3, value: message.content });
    const save = h("button", { type: "submit", class: "primary" }, "Send edit");
    const cancel = h("button", { type: "button", onclick: () => renderOne(message.id) }, "Cancel");
    const editor = h(
      "form",
      {
        class: "composer",
        onsubmit: (event) => {
          event.preventDefault();
          if (!text.value.trim()) return;
          follow("POST", `${base}/messages`, {
            content: text.value,
            parent_id: message.parent_id, // null: a new first turn
            parameters: params.values(),
            stream: true,
          });
        },
      },
      field("Edit your message", text),
      h("div", { class: "buttons" }, save, cancel),
    );
    item.querySelector(".content").replaceWith(editor);
    item.querySelector(".actions")?.remove();
    text.focus();
  }

  async function regenerate(message) {
    await follow("POST", `${base}/messages/${message.id}/regenerate`, { parameters: params.values(), stream: true });
  }

  async function stopAnswer() {
    const streaming = state.streaming;
    if (!streaming || !streaming.messageId) return;
    await guarded(() => api.api("POST", `${base}/messages/${streaming.messageId}/stop`), stop);
  }

  /** Read an answer's events until `done`: from the request that asked for it, then (after a
   * dropped connection, or a stream the server capped) from its re-attach endpoint. */
  async function follow(method, path, body, messageId = null) {
    const reader = new AbortController();
    signal.addEventListener("abort", () => reader.abort());
    const streaming = { messageId, lastEventId: null, done: false };
    state.streaming = streaming;
    status.textContent = "The model is answering…";
    list.setAttribute("aria-busy", "true");
    render();
    let failures = 0;
    const onEvent = (event) => {
      if (event.id) streaming.lastEventId = event.id;
      failures = 0;
      const data = JSON.parse(event.data);
      if (event.event === "start") {
        if (data.user_message) {
          state.byId.set(data.user_message.id, data.user_message);
          // What waited in the composer went with this message.
          state.attachments.push(...attach.sent());
        }
        state.byId.set(data.message.id, data.message);
        streaming.messageId = data.message.id;
        state.path = pathTo(data.message.id);
        render();
      } else if (event.event === "delta") {
        const message = state.byId.get(streaming.messageId);
        if (!message) return;
        message.content += data.text;
        const content = list.querySelector(`[data-message-id="${message.id}"] .content`);
        if (content) content.textContent = message.content;
      } else if (event.event === "done") {
        state.byId.set(data.id, data);
        streaming.done = true;
        renderOne(data.id);
      }
    };
    try {
      while (!streaming.done) {
        try {
          await api.streamEvents(method, path, { body, lastEventId: streaming.lastEventId, signal: reader.signal, onEvent });
        } catch (error) {
          if (error.name === "AbortError") return;
          const dropped = !(error instanceof api.ApiError) || error.status === 0;
          failures += 1;
          if (!dropped || !streaming.messageId || failures > 5) throw error;
          await new Promise((resolve) => setTimeout(resolve, 500 * failures));
        }
        if (!streaming.messageId) break;
        method = "GET";
        path = `${base}/messages/${streaming.messageId}/stream`;
        body = undefined;
      }
    } catch (error) {
      showError(error);
    } finally {
      if (state.streaming === streaming) state.streaming = null;
      if (!signal.aborted) {
        list.removeAttribute("aria-busy");
        status.textContent = streaming.done ? "Answer complete." : "";
        render();
        guarded(async () => {
          // The first message names a conversation that had no title.
          const { title } = await api.api("GET", base, { signal });
          state.conversation.title = title;
          heading.textContent = title || "New conversation";
          await sidebar.load();
        });
      }
    }
  }

  const [conversation, attachments] = await Promise.all([
    api.api("GET", base, { signal }),
    api.api("GET", `${base}/attachments`, { signal }),
  ]);
  setConversation(conversation);
  state.attachments = attachments;
  const { pending } = assign();
  state.attachments = state.attachments.filter((a) => !pending.includes(a));
  const attach = attachmentPicker(base, form, pending);
  form.insertBefore(attach.element, form.querySelector(".buttons"));
  params = parametersPanel(state.conversation.parameters);
  const templates = templatesPanel({
    signal,
    canSend: () => !state.streaming,
    send: async (body) => {
      await attach.settled();
      await follow("POST", `${base}/messages`, { ...body, parameters: params.values(), stream: true });
    },
  });
  templates.element.addEventListener("toggle", () => {
    if (templates.element.open && !templates.loaded) {
      templates.loaded = true;
      guarded(() => templates.load());
    }
  });
  const exports = exportButtons(base, () => state.conversation.title, status);
  replace(pane, h("div", { class: "thread-head" }, heading, modelLine, exports), list, status, form, templates.element, params.element);

  /** Which sent user message each attachment went with (see chat_attachments.js). */
  function assign() {
    const users = state.path.map((id) => state.byId.get(id)).filter((m) => m.role === "user");
    const result = assignAttachments(state.attachments, users);
    state.sentWith = result.byMessage;
    return result;
  }
  if (state.conversation.role === "owner") pane.append(await modelSwitch());

  /** The owner switches the model for the turns to come; earlier answers keep theirs. */
  async function modelSwitch() {
    const models = await api.api("GET", "/api/v1/models?status=ready&limit=100", { signal });
    const refs = models.items.map((m) => m.ref);
    if (!refs.includes(state.conversation.model_ref)) refs.unshift(state.conversation.model_ref);
    const picker = h("select", { name: "model" }, refs.map((ref) => h("option", { value: ref, selected: ref === state.conversation.model_ref }, ref)));
    const apply = h("button", { type: "submit" }, "Switch model");
    return h(
      "form",
      {
        class: "card params",
        onsubmit: (event) => {
          event.preventDefault();
          guarded(async () => {
            const updated = await api.api("PATCH", base, { body: { model: picker.value } });
            state.conversation.model_ref = updated.model_ref;
            modelLine.textContent = `With ${updated.model_ref}`;
            status.textContent = `Next answers come from ${updated.model_ref}.`;
          }, apply);
        },
      },
      field("Model for the next answers", picker),
      h("div", { class: "buttons" }, apply),
    );
  }
  render();

  const unfinished = state.path.map((id) => state.byId.get(id)).find((m) => m.status === "streaming");
  if (unfinished) {
    // A reload during an answer: its events again from the start, then live.
    unfinished.content = "";
    follow("GET", `${base}/messages/${unfinished.id}/stream`, undefined, unfinished.id);
  } else if (pendingFirst && pendingFirst.id === conversationId) {
    const { content } = pendingFirst;
    pendingFirst = null;
    follow("POST", `${base}/messages`, { content, parameters: params.values(), stream: true });
  }
  input.focus();
}
