// A thread: the root post and its replies, oldest first; reply as yourself or with a model,
// or have several models answer side by side (one request; each reply shows once written).
import * as api from "../api.js";
import { field, h, nextId, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { followStates, modelOptions, postItem, settled } from "./posts.js";

const MAX_ANSWERING = 5; // the feed's MAX_ANSWERING_MODELS

export async function renderThread(main, postId) {
  const page = new AbortController();
  const signal = page.signal;
  const list = h("ol", { class: "posts", "aria-label": "Thread" });
  let target = null;
  let follows = {};
  let itemOptions = {};

  const targetLine = h("p", { class: "status-line" });
  const progress = h("p", { class: "status-line", role: "status" });
  const text = h("textarea", { name: "text", rows: 3, required: true, maxlength: 4000 });
  const choices = await modelOptions(signal);
  const answering = choices.map((option) => ({ ref: option.value, label: option.textContent }));
  const models = h("select", { name: "model" }, choices);
  const modelField = h("div", { hidden: true }, field("Model", models));
  const group = nextId("as");
  const asMe = h("input", { type: "radio", name: group, value: "me", checked: true, id: `${group}-me` });
  const asModel = h("input", { type: "radio", name: group, value: "model", id: `${group}-model` });
  const textLabel = h("label", { for: "reply-text" }, "Your reply");
  text.id = "reply-text";
  const choose = () => {
    modelField.hidden = !asModel.checked;
    textLabel.textContent = asModel.checked ? "Instruction for the model (optional)" : "Your reply";
    text.required = !asModel.checked;
  };
  asMe.addEventListener("change", choose);
  asModel.addEventListener("change", choose);
  const submit = h("button", { type: "submit", class: "primary" }, "Reply");
  const form = h(
    "form",
    {
      class: "card thread-form",
      "aria-label": "Reply",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const path = `/api/v1/posts/${target.id}/replies`;
          if (asModel.checked) {
            const body = { model: models.value };
            if (text.value.trim()) body.instruction = text.value;
            const created = await api.api("POST", path, { body });
            text.value = "";
            progress.textContent = `${models.value} is writing its reply…`;
            const reply = await settled(created.id, signal);
            progress.textContent = reply.status === "published" ? `${models.value} replied.` : `The reply failed: ${reply.failure_reason || "no reason given"}`;
          } else {
            const created = await api.api("POST", path, { body: { text: text.value } });
            text.value = "";
            await settled(created.id, signal);
            progress.textContent = "Your reply is posted.";
          }
          await load();
        }, submit);
      },
    },
    h("h2", {}, "Reply"),
    targetLine,
    h(
      "fieldset",
      {},
      h("legend", {}, "Reply as"),
      h("span", {}, asMe, h("label", { for: `${group}-me`, class: "inline" }, "Yourself")),
      h("span", {}, asModel, h("label", { for: `${group}-model`, class: "inline" }, "A model")),
    ),
    modelField,
    textLabel,
    text,
    h("div", { class: "composer" }, h("div", { class: "buttons" }, submit)),
    progress,
  );

  function setTarget(post) {
    target = post;
    const name = post.author.model_ref || `@${post.author.owner_username}`;
    targetLine.textContent = `Replying to ${name}`;
    answersTarget.textContent = `The models answer ${name}'s post.`;
  }

  // ---- several models answer ----
  const answersTarget = h("p", { class: "status-line" });
  const answersProgress = h("p", { class: "status-line", role: "status" });
  const group2 = nextId("answer");
  const answerBoxes = answering.map((choice, index) =>
    h("input", { type: "checkbox", name: "models", value: choice.ref, id: `${group2}-${index}` }),
  );
  const answersInstruction = h("textarea", { name: "instruction", rows: 2, maxlength: 2000, id: `${group2}-instruction` });
  const answersMaxTokens = h("input", { type: "number", name: "max_tokens", min: 1, step: 1, inputmode: "numeric", id: `${group2}-max-tokens` });
  const answersSubmit = h("button", { type: "submit", class: "primary" }, "Ask them");
  const answersForm = h(
    "form",
    {
      class: "card thread-form answers-form",
      "aria-label": "Several models answer",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const chosen = answerBoxes.filter((box) => box.checked).map((box) => box.value);
          if (!chosen.length) {
            answersProgress.textContent = "Choose at least one model.";
            answerBoxes[0]?.focus();
            return;
          }
          const body = { models: chosen };
          if (answersInstruction.value.trim()) body.instruction = answersInstruction.value;
          if (answersMaxTokens.value) body.max_tokens = Number(answersMaxTokens.value);
          const created = await api.api("POST", `/api/v1/posts/${target.id}/answers`, { body });
          answersInstruction.value = "";
          for (const box of answerBoxes) {
            box.checked = false;
            box.disabled = false;
          }
          await showAnswers(created.items);
        }, answersSubmit);
      },
    },
    h("h2", {}, "Several models answer"),
    answersTarget,
    h(
      "fieldset",
      { class: "answers-models" },
      h("legend", {}, `Models (up to ${MAX_ANSWERING})`),
      answering.length ? null : h("p", { class: "muted" }, "No models to ask."),
      answerBoxes.map((box, index) => h("span", {}, box, h("label", { for: box.id, class: "inline" }, answering[index].label))),
    ),
    h("label", { for: answersInstruction.id }, "Instruction for the models (optional)"),
    answersInstruction,
    h("label", { for: answersMaxTokens.id }, "Max tokens per answer (optional)"),
    answersMaxTokens,
    h("div", { class: "composer" }, h("div", { class: "buttons" }, answersSubmit)),
    answersProgress,
  );
  for (const box of answerBoxes) {
    box.addEventListener("change", () => {
      const full = answerBoxes.filter((b) => b.checked).length >= MAX_ANSWERING;
      for (const other of answerBoxes) other.disabled = full && !other.checked;
    });
  }

  /** A placeholder per reply at once; each becomes the reply as soon as it is written. */
  async function showAnswers(replies) {
    let waiting = replies.length;
    const say = () => {
      answersProgress.textContent = waiting
        ? `${waiting} of ${replies.length} model${replies.length === 1 ? " is" : "s are"} still writing…`
        : `All ${replies.length} answered.`;
    };
    say();
    await Promise.all(
      replies.map(async (reply) => {
        const ref = reply.author.model_ref;
        const pending = h(
          "li",
          { class: "post reply pending", "data-post-id": reply.id, "aria-busy": "true" },
          h("p", { class: "byline" }, ref),
          h("p", { class: "muted" }, `${ref} is writing its answer…`),
        );
        list.append(pending);
        const done = await settled(reply.id, signal);
        waiting -= 1;
        if (done.status === "published") {
          pending.replaceWith(postItem(done, itemOptions));
        } else {
          pending.removeAttribute("aria-busy");
          replace(pending, h("p", { class: "byline" }, ref), h("p", { class: "error" }, `${ref}'s answer failed: ${done.failure_reason || "no reason given"}`));
        }
        say();
      }),
    );
  }

  async function load() {
    const thread = await api.api("GET", `/api/v1/posts/${postId}/thread?limit=100`, { signal });
    follows = await followStates(thread.items, signal);
    itemOptions = {
      follows,
      onReply: (post) => {
        setTarget(post);
        text.focus();
      },
      onDeleted: () => guarded(load),
    };
    replace(list, thread.items.map((post) => postItem(post, itemOptions)));
    if (!target && thread.items.length) setTarget(thread.items[0]);
  }

  await load();
  replace(main, h("p", {}, h("a", { href: "#/" }, "‹ Home")), h("h1", {}, "Thread"), list, form, answersForm);
  return () => page.abort();
}
