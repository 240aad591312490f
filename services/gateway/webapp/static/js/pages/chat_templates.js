// Prompt templates on the chat page: pick one (built-in or yours), fill a form with one field per
// variable, watch the rendered prompt (the API renders it: the same sandbox the message will go
// through), send it; create, edit and delete your own templates.
import * as api from "../api.js";
import { field, h, replace } from "../dom.js";
import { guarded } from "../ui.js";

const TEMPLATES = "/api/v1/prompt-templates";
const KEYWORDS = new Set(["if", "elif", "else", "endif", "not", "and", "or", "is", "in", "true", "false", "none", "True", "False", "None"]);

/**
 * The variables a template body uses, in order of first use: what the editor declares with it.
 * The API parses the body for real and refuses a mismatch (its detail is shown), so this only
 * has to be right for the templates it accepts.
 */
export function placeholders(body) {
  const names = [];
  for (const block of body.matchAll(/\{\{([\s\S]*?)\}\}|\{%([\s\S]*?)%\}/g)) {
    const inside = (block[1] ?? block[2]).replace(/\|\s*[A-Za-z_]\w*/g, " ").replace(/(["'])(?:(?!\1).)*\1/g, " ");
    for (const [word] of inside.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) {
      if (!KEYWORDS.has(word) && !names.includes(word)) names.push(word);
    }
  }
  return names;
}

/**
 * The templates panel. `send({template_id, variables})` sends a message from the filled form
 * (it resolves once the answer has started or failed); `canSend()` says whether one may go now.
 */
export function templatesPanel({ send, canSend, signal }) {
  let builtin = [];
  let mine = [];
  const picker = h("select", { name: "template" });
  const description = h("p", { class: "muted template-description" });
  const variables = h("div", { class: "template-variables" });
  const preview = h("pre", { class: "template-preview", "aria-live": "polite", "aria-label": "Preview of the prompt", tabindex: "0" });
  const problem = h("p", { class: "error template-problem", role: "alert" });
  const sendButton = h("button", { type: "submit", class: "primary" }, "Send from template");
  const editButton = h("button", { type: "button", onclick: () => openEditor(selected()) }, "Edit template");
  const deleteButton = h("button", { type: "button", class: "danger", onclick: () => confirmDelete() }, "Delete template");
  const newButton = h("button", { type: "button", onclick: () => openEditor(null) }, "New template");
  const manage = h("div", { class: "buttons template-manage" }, newButton, editButton, deleteButton);
  const editorSlot = h("div", { class: "template-editor-slot" });
  const inputs = new Map();
  let renderTimer = null;
  let renderSeq = 0;

  const useForm = h(
    "form",
    {
      class: "template-use",
      onsubmit: (event) => {
        event.preventDefault();
        const template = selected();
        if (!template || !canSend()) return;
        guarded(async () => {
          await send({ template_id: template.id, variables: values() });
          for (const input of inputs.values()) input.value = "";
          schedulePreview();
        }, sendButton);
      },
    },
    field("Template", picker),
    description,
    variables,
    h("h3", { class: "preview-heading" }, "Preview"),
    preview,
    problem,
    h("div", { class: "buttons" }, sendButton),
  );

  const element = h(
    "details",
    { class: "card params templates" },
    h("summary", {}, "Prompt templates"),
    useForm,
    manage,
    editorSlot,
  );

  function all() {
    return [...mine, ...builtin];
  }

  function selected() {
    return all().find((t) => t.id === picker.value) || null;
  }

  /** The filled fields: one left empty is missing, and the API names it. */
  function values() {
    const result = {};
    for (const [name, input] of inputs) if (input.value !== "") result[name] = input.value;
    return result;
  }

  function drawPicker(chosenId) {
    replace(
      picker,
      mine.length ? h("optgroup", { label: "Yours" }, mine.map((t) => h("option", { value: t.id }, t.name))) : null,
      h("optgroup", { label: "Built-in" }, builtin.map((t) => h("option", { value: t.id }, t.name))),
    );
    if (chosenId && all().some((t) => t.id === chosenId)) picker.value = chosenId;
    drawForm();
  }

  function drawForm() {
    const template = selected();
    inputs.clear();
    replace(variables);
    description.textContent = template?.description || "";
    editButton.hidden = deleteButton.hidden = !template || template.builtin;
    sendButton.disabled = !template;
    if (!template) return;
    for (const name of template.variables) {
      const input = h("textarea", { name: `var-${name}`, rows: 2, "data-variable": name });
      input.addEventListener("input", schedulePreview);
      inputs.set(name, input);
      variables.append(h("div", { class: "template-variable" }, field(name, input)));
    }
    if (!template.variables.length) variables.append(h("p", { class: "muted" }, "This template has no variables."));
    schedulePreview(0);
  }

  function schedulePreview(delay = 250) {
    clearTimeout(renderTimer);
    renderTimer = setTimeout(renderPreview, delay);
  }

  async function renderPreview() {
    const template = selected();
    if (!template) return;
    const seq = ++renderSeq;
    const empty = template.variables.filter((name) => !inputs.get(name)?.value);
    if (empty.length) {
      // Not worth a request the API would refuse: it would only name these too.
      preview.textContent = "";
      problem.textContent = `Fill in: ${empty.join(", ")}.`;
      return;
    }
    try {
      const rendered = await api.api("POST", `${TEMPLATES}/${template.id}/render`, { body: { variables: values() }, signal });
      if (seq !== renderSeq) return;
      preview.textContent = rendered.text;
      problem.textContent = "";
    } catch (error) {
      if (error.name === "AbortError" || seq !== renderSeq) return;
      // Usually a variable left empty: the API names it.
      problem.textContent = error instanceof api.ApiError ? error.detail : error.message;
    }
  }

  async function load(chosenId = picker.value) {
    const page = await api.api("GET", `${TEMPLATES}?limit=100`, { signal });
    builtin = page.builtin;
    mine = page.items.filter((t) => !t.builtin);
    drawPicker(chosenId);
  }

  function openEditor(template) {
    const name = h("input", { name: "template-name", maxlength: 100, required: true, value: template?.name || "" });
    const about = h("input", { name: "template-description", maxlength: 500, value: template?.description || "" });
    const body = h("textarea", { name: "template-body", rows: 5, required: true, value: template?.body || "" });
    const declared = h("p", { class: "field-hint", "aria-live": "polite" });
    const showDeclared = () => {
      const names = placeholders(body.value);
      declared.textContent = names.length ? `Fields: ${names.join(", ")}` : "No fields yet.";
    };
    body.addEventListener("input", showDeclared);
    showDeclared();
    const save = h("button", { type: "submit", class: "primary" }, template ? "Save template" : "Create template");
    const errors = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      {
        class: "template-editor",
        "aria-label": template ? `Edit template ${template.name}` : "New template",
        onsubmit: (event) => {
          event.preventDefault();
          save.disabled = true;
          errors.textContent = "";
          const payload = { name: name.value.trim(), description: about.value.trim() || null };
          if (!template || body.value !== template.body) {
            payload.body = body.value;
            payload.variables = placeholders(body.value);
          }
          const request = template
            ? api.api("PATCH", `${TEMPLATES}/${template.id}`, { body: payload })
            : api.api("POST", TEMPLATES, { body: payload });
          request
            .then(async (saved) => {
              replace(editorSlot);
              await load(saved.id);
              newButton.focus();
            })
            .catch((error) => {
              errors.textContent = error instanceof api.ApiError ? error.detail : error.message;
            })
            .finally(() => {
              save.disabled = false;
            });
        },
      },
      h("h3", {}, template ? `Edit “${template.name}”` : "New template"),
      field("Name", name),
      field("Description (optional)", about),
      field("Template text", body, "Write {{ variable }} where a value goes; each one becomes a field."),
      declared,
      errors,
      h("div", { class: "buttons" }, save, h("button", { type: "button", onclick: () => { replace(editorSlot); newButton.focus(); } }, "Cancel")),
    );
    replace(editorSlot, form);
    name.focus();
  }

  function confirmDelete() {
    const template = selected();
    if (!template || template.builtin) return;
    const yes = h("button", { type: "button", class: "danger" }, `Delete “${template.name}”`);
    const no = h("button", { type: "button", onclick: () => { replace(editorSlot); deleteButton.focus(); } }, "Keep it");
    yes.addEventListener("click", () =>
      guarded(async () => {
        await api.api("DELETE", `${TEMPLATES}/${template.id}`);
        replace(editorSlot);
        await load(null);
        newButton.focus();
      }, yes),
    );
    replace(editorSlot, h("div", { class: "confirm", role: "group", "aria-label": "Confirm delete" }, h("p", {}, `Delete the template “${template.name}”? This cannot be undone.`), h("div", { class: "buttons" }, yes, no)));
    no.focus();
  }

  picker.addEventListener("change", drawForm);
  return { element, load };
}
