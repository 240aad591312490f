// Fine-tunes: the viewer's fine-tunes with their status, a form that starts one (a JSONL
// dataset checked by the API, whose 422 names each bad line), and one fine-tune's page with
// its progress and loss chart (uPlot, updated in place) live from the fine-tune's event stream,
// and cancel.
import * as api from "../api.js";
import { field, formatTime, h, nextId, replace } from "../dom.js";
import { clearError, guarded } from "../ui.js";
import { loss, lossChart } from "./fine_tune_chart.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const STATUS_TEXT = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  cancelled: "Cancelled",
};
// The form's hyperparameters, with the API's defaults (services/models_hub/fine_tunes/schemas.py).
const NUMBERS = [
  { name: "epochs", label: "Epochs", value: 3, min: 1, step: 1 },
  { name: "learning_rate", label: "Learning rate", value: 0.0002, min: 0, step: "any" },
  { name: "batch_size", label: "Batch size", value: 4, min: 1, step: 1 },
  { name: "max_seq_length", label: "Max sequence length (tokens)", value: 512, min: 8, step: 1 },
  { name: "seed", label: "Seed", value: 0, min: 0, step: 1 },
];
const LORA_NUMBERS = [
  { name: "lora_rank", label: "LoRA rank", value: 8, min: 1, step: 1 },
  { name: "lora_alpha", label: "LoRA alpha", value: 16, min: 1, step: 1 },
];

async function ownModels(signal) {
  const me = api.user();
  const query = new URLSearchParams({ owner: me.username, status: "ready", limit: "100" });
  return (await api.api("GET", `/api/v1/models?${query}`, { signal })).items;
}

function statusText(job) {
  let text = STATUS_TEXT[job.status] || job.status;
  if (job.status === "queued" && job.queue_position != null) text += ` (position ${job.queue_position} in the queue)`;
  if (job.status === "running" && job.cancel_requested) text += ", cancelling…";
  return text;
}

/** "training_file line 3" as the API names a dataset's bad line, in words. */
function problemText(problem) {
  const line = /^(training|validation)_file line (\d+)$/.exec(problem.field);
  if (line) return `${line[1] === "training" ? "Training" : "Validation"} file, line ${line[2]}: ${problem.message}`;
  return `${problem.field}: ${problem.message}`;
}

// ---- the list and the form -----------------------------------------------------------------

export async function renderFineTunes(view) {
  const page = new AbortController();
  const signal = page.signal;
  const [models, jobs] = await Promise.all([ownModels(signal), api.api("GET", "/api/v1/fine-tunes?limit=50", { signal })]);
  const names = Object.fromEntries(models.map((m) => [m.id, m.ref]));

  const rows = jobs.items.map((job) =>
    h(
      "tr",
      { "data-fine-tune-id": job.id },
      h("th", { scope: "row" }, h("a", { href: `#/fine-tunes/${job.id}` }, names[job.model_id] || job.model_id)),
      h("td", {}, statusText(job)),
      h("td", {}, job.method),
      h("td", {}, `${Math.round(job.progress.percent || 0)}%`),
      h("td", {}, formatTime(job.created_at)),
    ),
  );
  const list = jobs.items.length
    ? h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "fine-tunes-table", "aria-label": "Your fine-tunes" },
          h("thead", {}, h("tr", {}, ["Model", "Status", "Method", "Progress", "Started"].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {}, rows),
        ),
      )
    : h("p", { class: "muted" }, "No fine-tunes yet.");

  replace(view, h("h1", {}, "Fine-tunes"), list, h("h2", {}, "New fine-tune"), newFineTuneForm(models));
  return () => page.abort();
}

function numberInput(spec) {
  return h("input", { type: "number", name: spec.name, value: String(spec.value), min: spec.min, step: spec.step, required: true, inputmode: "decimal" });
}

function newFineTuneForm(models) {
  if (!models.length) {
    return h("p", { class: "card" }, "You have no ready models to fine-tune. ", h("a", { href: "#/models/new" }, "Create a model"), " and upload a version first.");
  }
  const model = h("select", { name: "model", required: true }, models.map((m) => h("option", { value: m.id }, `${m.name} (${m.ref})`)));
  const training = h("input", { type: "file", name: "training_file", accept: ".jsonl,.json,application/jsonl,text/plain", required: true });
  const validation = h("input", { type: "file", name: "validation_file", accept: ".jsonl,.json,application/jsonl,text/plain" });
  const method = h("select", { name: "method" }, h("option", { value: "lora" }, "LoRA (adapters, merged into the new version)"), h("option", { value: "full" }, "Full (every weight)"));
  const inputs = Object.fromEntries(NUMBERS.map((spec) => [spec.name, numberInput(spec)]));
  const loraInputs = Object.fromEntries(LORA_NUMBERS.map((spec) => [spec.name, numberInput(spec)]));
  const lora = h(
    "fieldset",
    { class: "lora" },
    h("legend", {}, "LoRA"),
    LORA_NUMBERS.map((spec) => h("div", { class: "field" }, field(spec.label, loraInputs[spec.name]))),
  );
  method.addEventListener("change", () => {
    lora.hidden = method.value !== "lora";
    lora.disabled = lora.hidden;
  });

  const errorId = nextId("ft-error");
  const errorBox = h("div", { class: "form-error", role: "alert", id: errorId, hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Start fine-tune");
  const all = { ...inputs, ...loraInputs, method, training_file: training, validation_file: validation };

  function clearProblems() {
    errorBox.hidden = true;
    replace(errorBox);
    for (const input of Object.values(all)) input.removeAttribute("aria-invalid");
  }
  function showProblems(error) {
    clearProblems();
    if (error && error.name === "AbortError") return;
    const detail = error instanceof api.ApiError ? error.detail : (error && error.message) || String(error);
    const problems = (error && error.fields) || [];
    replace(
      errorBox,
      h("p", {}, detail),
      problems.length ? h("ul", { "aria-label": "Problems found" }, problems.map((p) => h("li", {}, problemText(p)))) : null,
    );
    errorBox.hidden = false;
    for (const problem of problems) {
      const name = problem.field.split(" ")[0];
      if (all[name]) all[name].setAttribute("aria-invalid", "true");
    }
    errorBox.focus();
  }

  const form = h(
    "form",
    {
      class: "card owner-form fine-tune-form",
      "aria-label": "New fine-tune",
      "aria-describedby": errorId,
      onsubmit: async (event) => {
        event.preventDefault();
        clearProblems();
        clearError();
        const body = new FormData();
        body.append("training_file", training.files[0]);
        if (validation.files.length) body.append("validation_file", validation.files[0]);
        body.append("method", method.value);
        for (const input of Object.values(inputs)) body.append(input.name, input.value);
        if (method.value === "lora") for (const input of Object.values(loraInputs)) body.append(input.name, input.value);
        submit.disabled = true;
        try {
          const job = await api.api("POST", `/api/v1/models/${model.value}/fine-tunes`, { form: body });
          window.location.hash = `#/fine-tunes/${job.id}`;
        } catch (error) {
          showProblems(error);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "field" }, field("Base model (its active version is trained)", model)),
    h(
      "div",
      { class: "field" },
      field("Training data (JSONL)", training, 'One example per line: {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]} or {"text": "…"}.'),
    ),
    h("div", { class: "field" }, field("Validation data (JSONL, optional)", validation)),
    h(
      "fieldset",
      { class: "hyperparameters" },
      h("legend", {}, "Hyperparameters"),
      h("div", { class: "field" }, field("Method", method)),
      NUMBERS.map((spec) => h("div", { class: "field" }, field(spec.label, inputs[spec.name]))),
    ),
    lora,
    errorBox,
    h("div", { class: "buttons" }, submit),
  );
  errorBox.tabIndex = -1;
  return form;
}

// ---- one fine-tune, live -------------------------------------------------------------------

export async function renderFineTune(view, fineTuneId) {
  const page = new AbortController();
  const signal = page.signal;
  const path = `/api/v1/fine-tunes/${fineTuneId}`;
  let job = await api.api("GET", path, { signal });
  const metrics = [...job.metrics];

  const status = h("p", { class: "fine-tune-status", role: "status", "aria-live": "polite" });
  const bar = h("progress", { max: "100", value: "0", "aria-label": "Training progress" });
  const facts = h("dl", { class: "facts fine-tune-facts" });
  // One chart for the page's life: each progress report updates it in place.
  const chart = lossChart(metrics);
  const chartBox = h("div", { class: "chart-box", "aria-live": "off" }, chart.figure);
  const connection = h("p", { class: "muted", role: "status" });
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel fine-tune");
  cancel.addEventListener("click", () =>
    guarded(async () => {
      job = await api.api("POST", `${path}/cancel`, { signal });
      show();
    }, cancel).then(() => {
      cancel.disabled = FINAL.has(job.status) || job.cancel_requested;
    }),
  );

  function record(progress) {
    if (!progress || !progress.step) return false;
    const last = metrics[metrics.length - 1];
    if (last && progress.step < last.step) return false;
    if (last && progress.step === last.step) metrics[metrics.length - 1] = progress;
    else metrics.push(progress);
    return true;
  }

  function show() {
    const p = job.progress;
    // Set only on a change, so a screen reader announces the state, not every step.
    const said = `Status: ${statusText(job)}${job.error ? ` — ${job.error}` : ""}`;
    if (status.textContent !== said) status.textContent = said;
    bar.value = Math.round(p.percent || 0);
    bar.setAttribute("aria-valuetext", `${Math.round(p.percent || 0)}%, step ${p.step} of ${p.total_steps}`);
    const eta = p.eta_seconds != null && job.status === "running" ? `${Math.round(p.eta_seconds)} s` : "—";
    const rows = [
      ["Method", job.method],
      ["Step", `${p.step} of ${p.total_steps || "?"}`],
      ["Epoch", (p.epoch || 0).toFixed(2)],
      ["Training loss", loss(p.train_loss)],
      ["Validation loss", loss(p.validation_loss)],
      ["Tokens/s", p.tokens_per_second == null ? "—" : p.tokens_per_second.toFixed(1)],
      ["Time left", eta],
      ["Training examples", job.datasets.train ? String(job.datasets.train.examples) : "—"],
      [
        "Hyperparameters",
        Object.entries(job.hyperparameters)
          .filter(([k]) => k !== "method" && (job.method === "lora" || !k.startsWith("lora_")))
          .map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`)
          .join(", "),
      ],
    ];
    replace(facts, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
    if (job.result_version_id) {
      facts.append(h("dt", {}, "New version"), h("dd", {}, h("a", { href: `#/models/${job.model_id}` }, "Open the model (the new version validates like any upload)")));
    }
    chart.update(metrics);
    cancel.disabled = FINAL.has(job.status) || job.cancel_requested;
  }

  // Follow the event stream; after a drop, resume after the last event seen.
  function follow() {
    return api.followEvents(`${path}/events`, {
      signal,
      finished: () => FINAL.has(job.status),
      onState: (text) => {
        connection.textContent = text;
      },
      onEvent: (event) => {
        const data = JSON.parse(event.data);
        if (data.status) job = { ...job, status: data.status, error: data.error ?? job.error };
        if (data.progress) {
          record(data.progress);
          job = { ...job, progress: data.progress };
        }
        if (data.result_version_id) job = { ...job, result_version_id: data.result_version_id };
        show();
      },
      afterEach: async () => {
        if (!FINAL.has(job.status)) return;
        // The final record: error text, the new version, every metric.
        job = await api.api("GET", path, { signal });
        for (const progress of job.metrics) record(progress);
        show();
      },
    });
  }

  show();
  replace(
    view,
    h("p", {}, h("a", { href: "#/fine-tunes" }, "‹ Fine-tunes")),
    h("h1", {}, "Fine-tune"),
    status,
    h("div", { class: "field" }, bar),
    facts,
    h("h2", {}, "Loss"),
    chartBox,
    connection,
    h("div", { class: "buttons" }, cancel),
  );
  follow().catch((error) => {
    if (!signal.aborted) connection.textContent = `Live updates stopped: ${error.message}`;
  });
  return () => page.abort();
}
