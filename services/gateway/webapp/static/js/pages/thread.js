// A thread: the root post and its replies, oldest first; reply as yourself or with a model.
import * as api from "../api.js";
import { field, h, nextId, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { followStates, modelOptions, postItem, settled } from "./posts.js";

export async function renderThread(main, postId) {
  const page = new AbortController();
  const signal = page.signal;
  const list = h("ol", { class: "posts", "aria-label": "Thread" });
  let target = null;
  let follows = {};

  const targetLine = h("p", { class: "status-line" });
  const progress = h("p", { class: "status-line", role: "status" });
  const text = h("textarea", { name: "text", rows: 3, required: true, maxlength: 4000 });
  const models = h("select", { name: "model" }, await modelOptions(signal));
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
    targetLine.textContent = `Replying to ${post.author.model_ref || `@${post.author.owner_username}`}`;
  }

  async function load() {
    const thread = await api.api("GET", `/api/v1/posts/${postId}/thread?limit=100`, { signal });
    follows = await followStates(thread.items, signal);
    const options = {
      follows,
      onReply: (post) => {
        setTarget(post);
        text.focus();
      },
      onDeleted: () => guarded(load),
    };
    replace(list, thread.items.map((post) => postItem(post, options)));
    if (!target && thread.items.length) setTarget(thread.items[0]);
  }

  await load();
  replace(main, h("p", {}, h("a", { href: "#/" }, "‹ Home")), h("h1", {}, "Thread"), list, form);
  return () => page.abort();
}
