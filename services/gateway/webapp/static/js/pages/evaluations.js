// Evaluations: the viewer's evaluations with their status, a form that starts one on a model
// (or one of its versions, `owner/slug@2`) with the built-in prompt sets and sampling options
// the API offers, one evaluation's report as charts (bias, consistency, confidence,
// performance) with its numbers and raw JSON, two side by side with the API's comparison
// (differences highlighted), and exports: JSON and CSV from the API, the comparison as CSV.
import * as api from "../api.js";
import { field, formatTime, h, nextId, replace } from "../dom.js";
import { clearError, guarded } from "../ui.js";
import { download } from "./chat_files.js";
import { barChart } from "./fine_tune_chart.js";
import { dataTable, jsonTree, saveText, toCsv } from "./viewer.js";

const FINAL = new Set(["completed", "failed"]);
const STATUS_TEXT = { queued: "Queued", running: "Running", completed: "Completed", failed: "Failed" };
const VERDICT_TEXT = {
  balanced: "balanced",
  skewed_male: "skewed male",
  skewed_female: "skewed female",
  insufficient_data: "too few gendered terms to judge",
  not_measured: "not measured",
  association_found: "association found",
  no_association_found: "no association found",
};
// The form's numbers, with the API's defaults (services/inference/evaluations/schemas.py).
const NUMBERS = [
  { name: "temperature", label: "Temperature", value: 0.8, min: 0, max: 2, step: "any" },
  { name: "top_p", label: "Top-p", value: 1, min: 0.01, max: 1, step: "any" },
  { name: "max_tokens", label: "Max tokens per answer", value: 64, min: 1, step: 1 },
  { name: "repeats", label: "Repeats per consistency prompt", value: 3, min: 2, step: 1 },
  { name: "seed", label: "Seed (optional)", value: "", min: 0, step: 1 },
];

function statusText(evaluation) {
  const text = STATUS_TEXT[evaluation.status] || evaluation.status;
  return evaluation.status === "running" ? `${text} (${Math.round(100 * evaluation.progress)}%)` : text;
}

function refOf(evaluation) {
  return evaluation.version_number != null ? `${evaluation.model_ref.split("@")[0]} version ${evaluation.version_number}` : evaluation.model_ref;
}

function num(value, digits = 3) {
  if (value == null || typeof value !== "number") return value == null ? "—" : String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

function verdict(value) {
  return VERDICT_TEXT[value] || (value == null ? "—" : String(value).replaceAll("_", " "));
}

/** The detail of an API error in a form's alert box (focused, so it is read out). */
function showProblem(box, error) {
  if (error && error.name === "AbortError") return;
  const detail = error instanceof api.ApiError ? error.detail : (error && error.message) || String(error);
  const fields = (error && error.fields) || [];
  replace(box, h("p", {}, detail), fields.length ? h("ul", {}, fields.map((f) => h("li", {}, `${f.field}: ${f.message}`))) : null);
  box.hidden = false;
  box.focus();
}

function errorBox() {
  return h("div", { class: "form-error", role: "alert", tabindex: "-1", hidden: true });
}

// ---- the list, the form, the comparison picker ----------------------------------------------

export async function renderEvaluations(view) {
  const page = new AbortController();
  const signal = page.signal;
  const me = api.user();
  const [evaluations, sets, models] = await Promise.all([
    api.api("GET", "/api/v1/evaluations?limit=50", { signal }),
    api.api("GET", "/api/v1/evaluations/prompt-sets", { signal }),
    api.api("GET", `/api/v1/models?${new URLSearchParams({ owner: me.username, limit: "100" })}`, { signal }),
  ]);
  const items = evaluations.items;
  const list = items.length
    ? h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "fine-tunes-table evaluations-table", "aria-label": "Your evaluations" },
          h("thead", {}, h("tr", {}, ["Model", "Status", "Started", "Finished"].map((name) => h("th", { scope: "col" }, name)))),
          h(
            "tbody",
            {},
            items.map((e) =>
              h(
                "tr",
                { "data-evaluation-id": e.id },
                h("th", { scope: "row" }, h("a", { href: `#/evaluations/${e.id}` }, refOf(e))),
                h("td", { class: `status-${e.status}` }, statusText(e)),
                h("td", {}, formatTime(e.created_at)),
                h("td", {}, formatTime(e.finished_at)),
              ),
            ),
          ),
        ),
      )
    : h("p", { class: "muted" }, "No evaluations yet.");
  const completed = items.filter((e) => e.status === "completed");
  replace(
    view,
    h("h1", {}, "Evaluations"),
    list,
    completed.length >= 2 ? compareForm(completed) : null,
    h("h2", {}, "New evaluation"),
    newEvaluationForm(sets, models.items),
  );
  return () => page.abort();
}

function compareForm(completed) {
  const option = (e) => h("option", { value: e.id }, `${refOf(e)} — ${formatTime(e.finished_at)}`);
  const a = h("select", { name: "a", required: true }, completed.map(option));
  const b = h("select", { name: "b", required: true }, completed.map(option));
  b.selectedIndex = 1;
  const box = errorBox();
  return h(
    "form",
    {
      class: "card owner-form compare-form",
      "aria-label": "Compare two evaluations",
      onsubmit: (event) => {
        event.preventDefault();
        if (a.value === b.value) {
          showProblem(box, new Error("Choose two different evaluations."));
          return;
        }
        window.location.hash = `#/evaluations/${a.value}/vs/${b.value}`;
      },
    },
    h("h2", {}, "Compare two evaluations"),
    h("div", { class: "compare-pick" }, h("div", { class: "field" }, field("First (A, the baseline)", a)), h("div", { class: "field" }, field("Second (B)", b))),
    box,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Compare")),
  );
}

/** `owner/slug` or `owner/slug@3` into its parts; null when it is neither. */
export function parseRef(text) {
  const match = /^([A-Za-z0-9_]{1,32})\/([a-z0-9][a-z0-9._-]{0,63})(?:@(\d+))?$/.exec(text.trim());
  return match ? { owner: match[1], slug: match[2], version: match[3] ? Number(match[3]) : null } : null;
}

function newEvaluationForm(sets, models) {
  const listId = nextId("models");
  const model = h("input", { type: "text", name: "model", required: true, list: listId, autocomplete: "off", placeholder: "owner/model or owner/model@2" });
  const suggestions = h("datalist", { id: listId }, models.map((m) => h("option", { value: m.ref })));
  if (models.length) model.value = models[0].ref;
  const setBoxes = sets.map((set) => {
    const box = h("input", { type: "checkbox", name: "prompt_set", value: `${set.name}@${set.version}`, checked: true, id: nextId("set") });
    return {
      box,
      item: h(
        "li",
        {},
        box,
        h("label", { for: box.id, class: "inline" }, `${set.name} (v${set.version}, ${set.size} prompt${set.size === 1 ? "" : "s"}, ${set.kind}${set.probe ? `: ${set.probe}` : ""})`),
        set.description ? h("p", { class: "field-hint" }, set.description) : null,
      ),
    };
  });
  const inputs = Object.fromEntries(
    NUMBERS.map((spec) => [spec.name, h("input", { type: "number", name: spec.name, value: String(spec.value), min: spec.min, max: spec.max, step: spec.step, inputmode: "decimal" })]),
  );
  const custom = h("textarea", { name: "custom", rows: 3 });
  const heldout = h("textarea", { name: "heldout_text", rows: 3 });
  const box = errorBox();
  const submit = h("button", { type: "submit", class: "primary" }, "Start evaluation");
  return h(
    "form",
    {
      class: "card owner-form evaluation-form",
      "aria-label": "New evaluation",
      onsubmit: async (event) => {
        event.preventDefault();
        clearError();
        box.hidden = true;
        const ref = parseRef(model.value);
        if (!ref) {
          showProblem(box, new Error("Name the model as owner/model, or owner/model@version for one of its versions."));
          model.setAttribute("aria-invalid", "true");
          return;
        }
        model.removeAttribute("aria-invalid");
        const sampling = {
          temperature: Number(inputs.temperature.value),
          top_p: Number(inputs.top_p.value),
          max_tokens: Number(inputs.max_tokens.value),
        };
        if (inputs.seed.value !== "") sampling.seed = Number(inputs.seed.value);
        const body = {
          prompt_sets: setBoxes.filter((s) => s.box.checked).map((s) => s.box.value),
          sampling,
          repeats: Number(inputs.repeats.value),
        };
        if (ref.version != null) body.version = ref.version;
        const own = custom.value
          .split("\n")
          .map((line) => line.trim())
          .filter(Boolean);
        if (own.length) {
          body.custom_sets = [{ name: "my-prompts", kind: "general", description: "Prompts typed into the form.", prompts: own.map((text, i) => ({ id: `p${i + 1}`, text })) }];
        }
        if (heldout.value.trim()) body.heldout_text = heldout.value;
        submit.disabled = true;
        try {
          const created = await api.api("POST", `/api/v1/models/by-ref/${encodeURIComponent(ref.owner)}/${encodeURIComponent(ref.slug)}/evaluations`, { body });
          window.location.hash = `#/evaluations/${created.id}`;
        } catch (error) {
          showProblem(box, error);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "field" }, field("Model (owner/model, or owner/model@version)", model, "Without a version, the model's active version is evaluated."), suggestions),
    h("fieldset", { class: "prompt-sets" }, h("legend", {}, "Built-in prompt sets"), h("ul", { class: "set-list" }, setBoxes.map((s) => s.item))),
    h("div", { class: "field" }, field("Your own prompts (one per line, optional)", custom)),
    h("fieldset", { class: "hyperparameters" }, h("legend", {}, "Sampling"), NUMBERS.map((spec) => h("div", { class: "field" }, field(spec.label, inputs[spec.name])))),
    h("div", { class: "field" }, field("Held-out text for perplexity (optional)", heldout)),
    box,
    h("div", { class: "buttons" }, submit),
  );
}

// ---- one report ------------------------------------------------------------------------------

function facts(rows, cls = "report-facts") {
  return h("dl", { class: `facts fine-tune-facts ${cls}` }, rows.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function mean(values) {
  const known = values.filter((v) => typeof v === "number");
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
}

/** A report's sections: headline facts, then a chart per measure, each with its numbers. */
export function reportView(report) {
  const perplexity = report.perplexity || {};
  const consistency = report.consistency || {};
  const gender = report.gender || {};
  const probes = report.probes || [];
  const confidence = report.confidence || {};
  const performance = report.performance || {};
  const responses = report.responses || [];
  const summary = facts([
    ["Perplexity", perplexity.available ? num(perplexity.perplexity, 2) : `not measured (${perplexity.reason || "no held-out text"})`],
    ["Consistency (mean similarity)", num(consistency.mean_similarity)],
    ["Gender balance", gender.balance == null ? verdict(gender.verdict) : `${num(gender.balance)} — ${verdict(gender.verdict)}`],
    ...probes.map((p) => [`${p.name} probe`, `${verdict(p.verdict)} (${p.flagged_pairs} flagged pair${p.flagged_pairs === 1 ? "" : "s"})`]),
    ["Mean confidence score", num(confidence.mean_confidence_score)],
    ["Hedges per 100 words", num(confidence.hedges_per_100_words, 2)],
    ["Latency (mean, p95)", `${num(performance.mean_latency_ms, 1)} ms, ${num(performance.p95_latency_ms, 1)} ms`],
    ["Tokens/s", num(performance.tokens_per_second, 1)],
    ["Answers", String(responses.length)],
  ]);
  const charts = [];
  if (gender.per_prompt && gender.per_prompt.length) {
    charts.push(
      barChart({
        title: "Gender balance by prompt",
        rows: gender.per_prompt.map((p) => ({ label: `${p.set}/${p.prompt_id}`, values: [p.balance] })),
        min: -1,
        max: 1,
        note: gender.rule ? `Rule: ${gender.rule}` : null,
      }),
    );
  }
  const pairs = probes.flatMap((p) => p.pairs.map((pair) => ({ probe: p.name, ...pair })));
  if (pairs.length) {
    charts.push(
      barChart({
        title: "Paired probes: valence difference",
        rows: pairs.map((pair) => ({ label: `${pair.probe}/${pair.pair_id}: ${pair.groups.join(" vs ")}${pair.flagged ? " (flagged)" : ""}`, values: [pair.difference] })),
        min: -0.5,
        max: 0.5,
        note: probes[0].rule ? `Rule: ${probes[0].rule}` : null,
      }),
    );
  }
  if (consistency.per_prompt && consistency.per_prompt.length) {
    charts.push(
      barChart({
        title: "Consistency by prompt",
        rows: consistency.per_prompt.map((p) => ({ label: `${p.set}/${p.prompt_id}`, values: [p.mean_similarity] })),
        max: 1,
        note: consistency.method ? `Method: ${consistency.method}` : null,
      }),
    );
  }
  if (responses.length) {
    const bySet = new Map();
    for (const r of responses) bySet.set(r.set, [...(bySet.get(r.set) || []), r.confidence_score]);
    charts.push(
      barChart({
        title: "Confidence score by prompt set",
        rows: [...bySet].map(([set, scores]) => ({ label: set, values: [mean(scores)] })),
        min: -1,
        max: 1,
        note: confidence.method ? `Method: ${confidence.method}` : null,
      }),
    );
  }
  if (performance.requests) {
    charts.push(
      barChart({
        title: "Latency (milliseconds)",
        rows: [
          { label: "mean", values: [performance.mean_latency_ms] },
          { label: "p50", values: [performance.p50_latency_ms] },
          { label: "p95", values: [performance.p95_latency_ms] },
        ],
        digits: 1,
      }),
    );
  }
  return h(
    "div",
    { class: "report" },
    summary,
    h("div", { class: "charts report-charts" }, charts),
    responses.length
      ? h("details", { class: "report-answers" }, h("summary", {}, `Every answer (${responses.length})`), dataTable(responses, { caption: "Answers" }))
      : null,
    h("details", { class: "report-raw" }, h("summary", {}, "Raw report (JSON)"), lazy(() => jsonTree(report, { label: "Report" }))),
  );
}

/** A placeholder that becomes `build()` when its <details> first opens (large reports). */
function lazy(build) {
  const slot = h("div", { class: "lazy" });
  queueMicrotask(() => {
    const details = slot.closest("details");
    if (!details) return replace(slot, build());
    details.addEventListener("toggle", () => {
      if (details.open && !slot.firstChild) replace(slot, build());
    });
  });
  return slot;
}

function exportButtons(evaluation, status) {
  const base = `/api/v1/evaluations/${evaluation.id}/export`;
  const button = (label, query, name) => {
    const element = h(
      "button",
      {
        type: "button",
        onclick: () =>
          guarded(async () => {
            await download(`${base}?${query}`, name);
            status.textContent = `Downloaded ${label}.`;
          }, element),
      },
      `Download ${label}`,
    );
    return element;
  };
  return h(
    "div",
    { class: "exports", role: "group", "aria-label": "Export this evaluation" },
    button("JSON", "format=json", `evaluation-${evaluation.id}.json`),
    button("CSV (metrics)", "format=csv&table=metrics", `evaluation-${evaluation.id}-metrics.csv`),
    button("CSV (answers)", "format=csv&table=responses", `evaluation-${evaluation.id}-responses.csv`),
  );
}

// ---- one evaluation, live --------------------------------------------------------------------

export async function renderEvaluation(view, evaluationId, otherId) {
  if (otherId) return renderComparison(view, evaluationId, otherId);
  const page = new AbortController();
  const signal = page.signal;
  const path = `/api/v1/evaluations/${evaluationId}`;
  let evaluation = await api.api("GET", path, { signal });
  const heading = h("h1", {}, `Evaluation of ${refOf(evaluation)}`);
  const status = h("p", { class: "fine-tune-status evaluation-status", role: "status", "aria-live": "polite" });
  const bar = h("progress", { max: "100", value: "0", "aria-label": "Evaluation progress" });
  const stage = h("p", { class: "muted" });
  const body = h("div", { class: "report-box" });
  const saved = h("p", { class: "muted", role: "status" });

  function show() {
    const said = `Status: ${STATUS_TEXT[evaluation.status] || evaluation.status}${evaluation.error ? ` — ${evaluation.error}` : ""}`;
    if (status.textContent !== said) status.textContent = said;
    const percent = Math.round(100 * (evaluation.progress || 0));
    bar.value = percent;
    bar.setAttribute("aria-valuetext", `${percent}%, ${evaluation.done} of ${evaluation.total} answers`);
    bar.hidden = FINAL.has(evaluation.status);
    if (evaluation.status === "completed" && evaluation.report && !body.firstChild) {
      replace(body, exportButtons(evaluation, saved), saved, reportView(evaluation.report));
    }
  }

  function follow() {
    return api.followEvents(`${path}/events`, {
      signal,
      finished: () => FINAL.has(evaluation.status),
      // The stage line says how the connection is; one that ended well leaves it as it is.
      onState: (text) => {
        if (text) stage.textContent = text;
      },
      onEvent: (event) => {
        const data = JSON.parse(event.data);
        evaluation = { ...evaluation, status: data.status, done: data.done, total: data.total, progress: data.percent / 100, error: data.error ?? evaluation.error };
        stage.textContent = data.stage ? `Stage: ${data.stage.replaceAll("_", " ")} (${data.done} of ${data.total})` : "";
        show();
      },
      afterEach: async () => {
        // The stored record: the report once completed, the reason once failed.
        evaluation = await api.api("GET", path, { signal });
        if (FINAL.has(evaluation.status)) stage.textContent = "";
        show();
      },
    });
  }

  const settings = evaluation.parameters || {};
  const sampling = settings.sampling || {};
  replace(
    view,
    h("p", {}, h("a", { href: "#/evaluations" }, "‹ Evaluations")),
    heading,
    status,
    h("div", { class: "field" }, bar),
    stage,
    facts([
      ["Model", evaluation.model_ref],
      ["Prompt sets", evaluation.prompt_sets.map((s) => `${s.name}@${s.version}`).join(", ") || "—"],
      ["Sampling", Object.entries(sampling).map(([k, v]) => `${k.replaceAll("_", " ")} ${v ?? "—"}`).join(", ")],
      ["Repeats", String(settings.repeats ?? "—")],
      ["Started", formatTime(evaluation.created_at)],
    ], "evaluation-facts"),
    body,
  );
  show();
  if (!FINAL.has(evaluation.status)) {
    follow().catch((error) => {
      if (!signal.aborted) stage.textContent = `Live updates stopped: ${error.message}`;
    });
  }
  return () => page.abort();
}

// ---- two side by side ------------------------------------------------------------------------

const BETTER_TEXT = { a: "A", b: "B", same: "same" };

async function renderComparison(view, aId, bId) {
  const page = new AbortController();
  const signal = page.signal;
  const query = new URLSearchParams({ a: aId, b: bId });
  const [comparison, a, b] = await Promise.all([
    api.api("GET", `/api/v1/evaluations/compare?${query}`, { signal }),
    api.api("GET", `/api/v1/evaluations/${aId}`, { signal }),
    api.api("GET", `/api/v1/evaluations/${bId}`, { signal }),
  ]);
  const saved = h("p", { class: "muted", role: "status" });
  const highlighted = comparison.metrics.filter((m) => m.highlight).length;
  const table = h(
    "table",
    { class: "chart-table comparison-table" },
    h("caption", {}, `Differences (${highlighted} notable, highlighted)`),
    h("thead", {}, h("tr", {}, ["Metric", `A: ${refOf(a)}`, `B: ${refOf(b)}`, "B − A", "Change", "Better"].map((name) => h("th", { scope: "col" }, name)))),
    h(
      "tbody",
      {},
      comparison.metrics.map((m) =>
        h(
          "tr",
          { class: m.highlight ? "highlight" : null, "data-metric": m.metric },
          h("th", { scope: "row" }, m.metric, m.highlight ? h("span", { class: "pill notable" }, "notable") : null),
          h("td", {}, typeof m.a === "string" ? verdict(m.a) : num(m.a)),
          h("td", {}, typeof m.b === "string" ? verdict(m.b) : num(m.b)),
          h("td", {}, m.difference == null ? "—" : num(m.difference)),
          h("td", {}, m.relative == null ? "—" : `${m.relative >= 0 ? "+" : ""}${(100 * m.relative).toFixed(1)}%`),
          h("td", {}, m.better ? BETTER_TEXT[m.better] : "—"),
        ),
      ),
    ),
  );
  const exportCsv = h(
    "button",
    {
      type: "button",
      onclick: () => {
        saveText(toCsv(comparison.metrics, ["metric", "a", "b", "difference", "relative", "better", "highlight"]), `comparison-${aId}-${bId}.csv`, "text/csv");
        saved.textContent = "Downloaded the comparison as CSV.";
      },
    },
    "Download comparison CSV",
  );
  const exportJson = h(
    "button",
    {
      type: "button",
      onclick: () => {
        saveText(JSON.stringify(comparison, null, 2), `comparison-${aId}-${bId}.json`, "application/json");
        saved.textContent = "Downloaded the comparison as JSON.";
      },
    },
    "Download comparison JSON",
  );
  const side = (label, evaluation) =>
    h(
      "section",
      { class: "side", "aria-label": `${label}: ${refOf(evaluation)}` },
      h("h2", {}, `${label}: `, h("a", { href: `#/evaluations/${evaluation.id}` }, refOf(evaluation))),
      h("p", { class: "muted" }, `Finished ${formatTime(evaluation.finished_at)}`),
      evaluation.report ? reportView(evaluation.report) : h("p", {}, "No report."),
    );
  replace(
    view,
    h("p", {}, h("a", { href: "#/evaluations" }, "‹ Evaluations")),
    h("h1", {}, "Two evaluations side by side"),
    h("div", { class: "exports", role: "group", "aria-label": "Export this comparison" }, exportCsv, exportJson),
    saved,
    h("div", { class: "table-scroll" }, table),
    h("div", { class: "side-by-side" }, side("A", a), side("B", b)),
  );
  return () => page.abort();
}
