// A model's owner tools: editing the model, its posting schedule (the feed's schedules API)
// and, for a remote model, its provider (external endpoint) with "test connection". Each form
// shows the API's error `detail` in its own alert, and marks the fields a 422 names.
import * as api from "../api.js";
import { field, formatTime, h, nextId, replace } from "../dom.js";
import { clearError } from "../ui.js";

const VISIBILITIES = ["public", "unlisted", "private"];

// ---- errors shown in the form ------------------------------------------------------------

/**
 * A form's error area: `show(error)` writes the API's detail and, for a 422, marks each named
 * field (by `inputs`: field name -> input) invalid with its message; `clear()` takes it back.
 */
function formErrors(inputs) {
  const box = h("p", { class: "form-error", role: "alert", hidden: true });
  const marks = [];
  function clear() {
    box.hidden = true;
    box.textContent = "";
    for (const [input, note] of marks.splice(0)) {
      input.removeAttribute("aria-invalid");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id !== note.id);
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
      note.remove();
    }
  }
  function show(error) {
    clear();
    if (error && error.name === "AbortError") return;
    const detail = error instanceof api.ApiError ? error.detail : (error && error.message) || String(error);
    box.textContent = detail;
    box.hidden = false;
    if (!(error instanceof api.ApiError) || error.status !== 422) return;
    // "Invalid request. name: String should have ...; tags.0: ..." (shared/errors.py).
    const summary = detail.replace(/^Invalid request\.\s*/, "");
    for (const part of summary.split("; ")) {
      const colon = part.indexOf(": ");
      if (colon < 0) continue;
      const name = part.slice(0, colon).split(".")[0];
      const input = inputs[name];
      if (!input) continue;
      const note = h("span", { class: "field-error", id: nextId("err") }, part.slice(colon + 2));
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby") || ""} ${note.id}`.trim());
      input.after(note);
      marks.push([input, note]);
    }
  }
  return { box, show, clear };
}

/** Run a form's action with its submit button disabled and its errors shown in the form. */
async function submitting(button, errors, action) {
  button.disabled = true;
  errors.clear();
  clearError();
  try {
    return await action();
  } catch (error) {
    errors.show(error);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

// ---- editing the model -------------------------------------------------------------------

/** The edit form; `saved(model)` gets the API's answer. */
export function editSection(model, saved) {
  const name = h("input", { name: "name", required: true, maxlength: 100, value: model.name });
  const description = h("input", { name: "description", maxlength: 1000, value: model.description || "" });
  const tags = h("input", { name: "tags", value: model.tags.join(", ") });
  const visibility = h("select", { name: "visibility" }, VISIBILITIES.map((v) => h("option", { value: v }, v)));
  visibility.value = model.visibility;
  const card = h("textarea", { name: "card", rows: 8 });
  card.value = model.card || "";
  const system = h("textarea", { name: "system_prompt", rows: 2 });
  system.value = model.system_prompt || "";
  const submit = h("button", { type: "submit", class: "primary" }, "Save changes");
  const done = h("p", { class: "status-line", role: "status" });
  const errors = formErrors({ name, description, tags, visibility, card, system_prompt: system });
  const form = h(
    "form",
    {
      class: "card owner-form",
      "aria-labelledby": "edit-heading",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        done.textContent = "";
        submitting(submit, errors, async () => {
          const body = {
            name: name.value.trim(),
            description: description.value.trim() || null,
            tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
            visibility: visibility.value,
            card: card.value.trim() ? card.value : null,
            system_prompt: system.value.trim() ? system.value : null,
          };
          const updated = await api.api("PATCH", `/api/v1/models/${model.id}`, { body });
          done.textContent = "Saved.";
          saved(updated);
        });
      },
    },
    h("h2", { id: "edit-heading" }, "Edit the model"),
    field("Name", name),
    field("Description", description),
    field("Tags", tags, "Comma-separated, up to 10: letters, digits or '-'."),
    field("Visibility", visibility),
    field("Card", card, "Markdown: what the model is for, how it was made."),
    field("System prompt", system),
    errors.box,
    h("div", { class: "buttons" }, submit),
    done,
  );
  return form;
}

// ---- the posting schedule ----------------------------------------------------------------

function parseVariables(text) {
  const variables = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const equals = line.indexOf("=");
    if (equals < 0) throw new Error(`Each variable line reads name=value; "${line.trim()}" has no "=".`);
    variables[line.slice(0, equals).trim()] = line.slice(equals + 1).trim();
  }
  return variables;
}

/** The schedule editor: interval, prompts or a template with its variables, the daily window
 * (UTC hours), enabled; save, enable/disable, delete. */
export function scheduleSection(model, signal) {
  const path = `/api/v1/feed/models/${model.id}/schedule`;
  const state = h("p", { class: "status-line", role: "status" });
  const interval = h("input", { name: "interval_minutes", type: "number", min: 1, step: 1, value: 60, inputmode: "numeric" });
  const useTemplate = h("input", { type: "radio", name: "schedule-source", value: "template", class: "inline" });
  const usePrompts = h("input", { type: "radio", name: "schedule-source", value: "prompts", class: "inline", checked: true });
  const prompts = h("textarea", { name: "prompts", rows: 4 });
  const template = h("select", { name: "template_id" }, h("option", { value: "" }, "Choose a template"));
  const variables = h("textarea", { name: "variables", rows: 3 });
  const start = h("input", { name: "window_start_hour", type: "number", min: 0, max: 23, value: 0, inputmode: "numeric" });
  const end = h("input", { name: "window_end_hour", type: "number", min: 1, max: 24, value: 24, inputmode: "numeric" });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: true, class: "inline" });
  const save = h("button", { type: "submit", class: "primary" }, "Save schedule");
  const toggle = h("button", { type: "button", hidden: true });
  const remove = h("button", { type: "button", hidden: true }, "Delete schedule");
  const errors = formErrors({ interval_minutes: interval, prompts, template_id: template, variables, window_start_hour: start, window_end_hour: end });
  const promptsBox = h("div", {}, field("Prompts", prompts, "One a line; posted in turn, round and round."));
  const templateBox = h("div", { hidden: true }, field("Template", template), field("Variables", variables, "One a line: name=value."));
  let current = null;

  function showSource() {
    promptsBox.hidden = !usePrompts.checked;
    templateBox.hidden = usePrompts.checked;
  }
  usePrompts.addEventListener("change", showSource);
  useTemplate.addEventListener("change", showSource);

  function show(schedule) {
    current = schedule;
    toggle.hidden = remove.hidden = !schedule;
    if (!schedule) {
      state.textContent = "No posting schedule: this model posts only when asked.";
      return;
    }
    interval.value = String(schedule.interval_minutes);
    usePrompts.checked = schedule.prompts !== null;
    useTemplate.checked = schedule.prompts === null;
    prompts.value = (schedule.prompts || []).join("\n");
    template.value = schedule.template_id || "";
    variables.value = Object.entries(schedule.variables || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    start.value = String(schedule.window_start_hour);
    end.value = String(schedule.window_end_hour);
    enabled.checked = schedule.enabled;
    toggle.textContent = schedule.enabled ? "Disable schedule" : "Enable schedule";
    showSource();
    const parts = [schedule.enabled ? `Enabled: next post ${formatTime(schedule.next_run_at)}` : "Disabled"];
    if (schedule.last_run_at) parts.push(`last posted ${formatTime(schedule.last_run_at)}`);
    if (schedule.last_error) parts.push(`last error: ${schedule.last_error}`);
    state.textContent = `${parts.join(" · ")}.`;
  }

  function body(overrides = {}) {
    const result = {
      interval_minutes: Number(interval.value),
      window_start_hour: Number(start.value),
      window_end_hour: Number(end.value),
      enabled: enabled.checked,
    };
    if (usePrompts.checked) {
      result.prompts = prompts.value.split("\n").map((p) => p.trim()).filter(Boolean);
    } else {
      result.template_id = template.value || null;
      result.variables = parseVariables(variables.value);
    }
    return { ...result, ...overrides };
  }

  const form = h(
    "form",
    {
      class: "card owner-form",
      "aria-labelledby": "schedule-heading",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        submitting(save, errors, async () => show(await api.api("PUT", path, { body: body() })));
      },
    },
    h("h2", { id: "schedule-heading" }, "Posting schedule"),
    state,
    field("Every (minutes)", interval),
    h(
      "fieldset",
      {},
      h("legend", {}, "What to post"),
      h("label", { class: "inline-label" }, usePrompts, " Prompts I write"),
      h("label", { class: "inline-label" }, useTemplate, " A prompt template"),
    ),
    promptsBox,
    templateBox,
    h(
      "fieldset",
      {},
      h("legend", {}, "Active window (UTC hours)"),
      h("div", { class: "window-hours" }, h("div", {}, field("From hour", start)), h("div", {}, field("Until hour", end))),
      h("p", { class: "field-hint" }, "From is included, until is not; a start after the end wraps past midnight."),
    ),
    h("label", { class: "inline-label" }, enabled, " Enabled"),
    errors.box,
    h("div", { class: "buttons" }, save, toggle, remove),
  );
  toggle.addEventListener("click", () =>
    submitting(toggle, errors, async () => {
      enabled.checked = !current.enabled;
      show(await api.api("PUT", path, { body: body({ enabled: !current.enabled }) }));
    }),
  );
  remove.addEventListener("click", () =>
    submitting(remove, errors, async () => {
      await api.api("DELETE", path);
      show(null);
      save.focus();
    }),
  );

  async function load() {
    // The owner's schedules in one list: a model without one is no 404 (nor a console error).
    const [templates, schedules] = await Promise.all([
      api.api("GET", "/api/v1/prompt-templates?limit=100", { signal }),
      api.api("GET", "/api/v1/feed/schedules", { signal }),
    ]);
    const schedule = schedules.find((one) => one.model_id === model.id) || null;
    const all = [...templates.builtin, ...templates.items];
    template.append(...all.map((t) => h("option", { value: t.id }, `${t.name}${t.variables.length ? ` (${t.variables.join(", ")})` : ""}`)));
    // A chosen template's variables, ready to fill, when none are written yet.
    template.addEventListener("change", () => {
      const chosen = all.find((t) => t.id === template.value);
      if (chosen && !variables.value.trim()) variables.value = chosen.variables.map((v) => `${v}=`).join("\n");
    });
    show(schedule);
  }
  load().catch((error) => errors.show(error));
  return form;
}

// ---- the provider of a remote model ------------------------------------------------------

/** A remote model's provider: its endpoint, editable, and a connection test. */
export function providerSection(model, signal) {
  const path = `/api/v1/providers/${model.provider_id}`;
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  const baseUrl = h("input", { name: "base_url", type: "url", required: true, maxlength: 2048 });
  const apiKey = h("input", { name: "api_key", type: "password", autocomplete: "off", maxlength: 4096 });
  const removeKey = h("input", { type: "checkbox", name: "remove_key", class: "inline" });
  const keyState = h("p", { class: "field-hint" });
  const save = h("button", { type: "submit", class: "primary" }, "Save provider");
  const test = h("button", { type: "button" }, "Test connection");
  const result = h("div", { class: "connection-result", role: "status", "aria-live": "polite" });
  const errors = formErrors({ name, base_url: baseUrl, api_key: apiKey });

  function show(provider) {
    name.value = provider.name;
    baseUrl.value = provider.base_url;
    apiKey.value = "";
    removeKey.checked = false;
    keyState.textContent = provider.has_api_key ? "A key is stored (never shown). Type a new one to replace it." : "No key stored.";
  }

  const form = h(
    "form",
    {
      class: "card owner-form",
      "aria-labelledby": "provider-heading",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        replace(result);
        submitting(save, errors, async () => {
          const body = { name: name.value.trim(), base_url: baseUrl.value.trim() };
          if (removeKey.checked) body.api_key = null;
          else if (apiKey.value) body.api_key = apiKey.value;
          show(await api.api("PATCH", path, { body }));
          replace(result, h("p", {}, "Provider saved."));
        });
      },
    },
    h("h2", { id: "provider-heading" }, "Provider"),
    h("p", { class: "muted" }, `This model is ${model.remote_model || "a model"} served by an external OpenAI-compatible endpoint.`),
    field("Provider name", name),
    field("Base URL", baseUrl, "OpenAI-compatible: the part before /chat/completions (it usually ends in /v1)."),
    field("API key", apiKey),
    keyState,
    h("label", { class: "inline-label" }, removeKey, " Remove the stored key"),
    errors.box,
    h("div", { class: "buttons" }, save, test),
    result,
  );
  test.addEventListener("click", () =>
    submitting(test, errors, async () => {
      replace(result, h("p", {}, "Testing the connection…"));
      const outcome = await api.api("POST", `${path}/test`);
      if (outcome.ok) {
        replace(
          result,
          h("p", { class: "ok-text" }, `Connected: the provider lists ${outcome.models.length} model${outcome.models.length === 1 ? "" : "s"}.`),
          outcome.models.length ? h("ul", { "aria-label": "Models the provider lists" }, outcome.models.map((m) => h("li", {}, m))) : null,
        );
      } else {
        const status = outcome.status_code ? ` (HTTP ${outcome.status_code})` : "";
        replace(result, h("p", { class: "error-text" }, `Connection failed${status}: ${outcome.error || "no reason given"}`));
      }
    }).then(() => {
      if (!errors.box.hidden) replace(result);
    }),
  );
  api
    .api("GET", path, { signal })
    .then(show)
    .catch((error) => errors.show(error));
  return form;
}
