// The prompt lab: analyse a prompt for bias (the terms found marked in the text), get rewrites,
// and A/B test two prompts — the original and a rewrite — on one or more models (two models
// side by side, too), N samples each. A run's page shows each model's metrics for both arms as
// charts and a table, the answers side by side, and the API's JSON/CSV exports.
import * as api from "../api.js";
import { field, formatTime, h, nextId, replace } from "../dom.js";
import { clearError } from "../ui.js";
import { download } from "./chat_files.js";
import { barChart } from "./fine_tune_chart.js";
import { jsonTree } from "./viewer.js";

const FINAL = new Set(["completed", "failed"]);
const STATUS_TEXT = { queued: "Queued", running: "Running", completed: "Completed", failed: "Failed" };
const METHODS = [
  { value: "lexicon", label: "Lexicon (gendered, cultural, age and professional terms)" },
  { value: "counterfactual", label: "Counterfactual swap (needs a model)" },
  { value: "judge", label: "Model judgement (needs a model)" },
];
// The A/B summary's metrics, in words; bias first, then quality, then speed.
const BIAS_METRICS = [
  ["gendered_terms", "Gendered terms"],
  ["male_terms", "Male terms"],
  ["female_terms", "Female terms"],
  ["demographic_terms", "Demographic terms"],
  ["valence", "Valence"],
];
const QUALITY_METRICS = [
  ["consistency", "Consistency"],
  ["confidence_score", "Confidence score"],
  ["hedges", "Hedges"],
  ["words", "Words"],
  ["latency_ms", "Latency (ms)"],
  ["tokens_per_second", "Tokens/s"],
];
const POLL_MS = 1000;

function num(value, digits = 3) {
  if (value == null) return "—";
  return Number.isInteger(value) ? String(value) : Number(value).toFixed(digits);
}

function problemBox() {
  return h("div", { class: "form-error", role: "alert", tabindex: "-1", hidden: true });
}

function showProblem(box, error) {
  if (error && error.name === "AbortError") return;
  const detail = error instanceof api.ApiError ? error.detail : (error && error.message) || String(error);
  const fields = (error && error.fields) || [];
  replace(box, h("p", {}, detail), fields.length ? h("ul", {}, fields.map((f) => h("li", {}, `${f.field}: ${f.message}`))) : null);
  box.hidden = false;
  box.focus();
}

/** `text` with the [start, end) spans of `findings` wrapped in <mark> (titled with why). */
function marked(text, findings) {
  const spans = [...findings].sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const f of spans) {
    if (f.start < at) continue;
    parts.push(text.slice(at, f.start));
    parts.push(h("mark", { title: `${f.category}${f.group ? ` (${f.group})` : ""}` }, text.slice(f.start, f.end)));
    at = f.end;
  }
  parts.push(text.slice(at));
  return h("p", { class: "marked-prompt" }, parts);
}

function modelsOf(text) {
  return text
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

// ---- the page: analyse, rewrite, start an A/B run, earlier runs ------------------------------

export async function renderPromptLab(view, runId) {
  if (runId) return renderRun(view, runId);
  const page = new AbortController();
  const signal = page.signal;
  const me = api.user();
  const [runs, models] = await Promise.all([
    api.api("GET", "/api/v1/prompt-lab/ab-tests?limit=20", { signal }),
    api.api("GET", `/api/v1/models?${new URLSearchParams({ owner: me.username, limit: "100" })}`, { signal }),
  ]);
  const listId = nextId("lab-models");
  const suggestions = h("datalist", { id: listId }, models.items.map((m) => h("option", { value: m.ref })));
  const firstModel = models.items.length ? models.items[0].ref : "";

  // Analyse
  const prompt = h("textarea", { name: "prompt", rows: 3, required: true });
  const judgeModel = h("input", { type: "text", name: "model", list: listId, autocomplete: "off", value: firstModel, placeholder: "owner/model" });
  const methodBoxes = METHODS.map((m) => {
    const box = h("input", { type: "checkbox", value: m.value, checked: true, id: nextId("method") });
    return { box, item: h("li", {}, box, h("label", { for: box.id, class: "inline" }, m.label)) };
  });
  const analyseProblem = problemBox();
  const findings = h("div", { class: "lab-findings", "aria-live": "polite" });
  const analyse = h("button", { type: "submit", class: "primary" }, "Analyse");
  const rewriteButton = h("button", { type: "button" }, "Suggest rewrites");

  // A/B
  const original = h("textarea", { name: "original", rows: 3, required: true });
  const rewrite = h("textarea", { name: "rewrite", rows: 3, required: true });
  const abModels = h("textarea", { name: "models", rows: 2, required: true }, firstModel);
  abModels.value = firstModel;
  const samples = h("input", { type: "number", name: "samples", value: "3", min: 1, step: 1 });
  const temperature = h("input", { type: "number", name: "temperature", value: "0.8", min: 0, max: 2, step: "any" });
  const maxTokens = h("input", { type: "number", name: "max_tokens", value: "48", min: 1, step: 1 });
  const seed = h("input", { type: "number", name: "seed", value: "0", min: 0, step: 1 });
  const abProblem = problemBox();
  const start = h("button", { type: "submit", class: "primary" }, "Start A/B test");

  function useRewrite(text) {
    original.value = prompt.value;
    rewrite.value = text;
    rewrite.focus();
  }

  function analysisBody() {
    const body = { prompt: prompt.value, methods: methodBoxes.filter((m) => m.box.checked).map((m) => m.box.value) };
    if (judgeModel.value.trim()) body.model = judgeModel.value.trim();
    return body;
  }

  async function run(button, action) {
    clearError();
    analyseProblem.hidden = true;
    button.disabled = true;
    findings.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (error) {
      showProblem(analyseProblem, error);
    } finally {
      button.disabled = false;
      findings.removeAttribute("aria-busy");
    }
  }

  rewriteButton.addEventListener("click", () =>
    run(rewriteButton, async () => {
      const body = { prompt: prompt.value };
      if (judgeModel.value.trim()) body.model = judgeModel.value.trim();
      const answer = await api.api("POST", "/api/v1/prompt-lab/rewrite", { body, signal });
      replace(findings, h("h3", {}, "Rewrites"), suggestionList(answer.suggestions, useRewrite));
    }),
  );

  const analyseForm = h(
    "form",
    {
      class: "card owner-form lab-analyse",
      "aria-label": "Analyse a prompt",
      onsubmit: (event) => {
        event.preventDefault();
        run(analyse, async () => {
          const answer = await api.api("POST", "/api/v1/prompt-lab/analyze", { body: analysisBody(), signal });
          replace(findings, analysisView(answer, useRewrite));
        });
      },
    },
    h("h2", {}, "Analyse a prompt"),
    h("div", { class: "field" }, field("Prompt", prompt)),
    h("div", { class: "field" }, field("Model for the swap, the judgement and rewrites (optional)", judgeModel, "owner/model; without one only the lexicon runs."), suggestions),
    h("fieldset", { class: "methods" }, h("legend", {}, "Methods"), h("ul", { class: "set-list" }, methodBoxes.map((m) => m.item))),
    analyseProblem,
    h("div", { class: "buttons" }, analyse, rewriteButton),
    findings,
  );

  const abForm = h(
    "form",
    {
      class: "card owner-form lab-ab",
      "aria-label": "A/B test two prompts",
      onsubmit: async (event) => {
        event.preventDefault();
        clearError();
        abProblem.hidden = true;
        const sampling = { temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) };
        if (seed.value !== "") sampling.seed = Number(seed.value);
        const body = { original: original.value, rewrite: rewrite.value, models: modelsOf(abModels.value), samples: Number(samples.value), sampling };
        start.disabled = true;
        try {
          const created = await api.api("POST", "/api/v1/prompt-lab/ab-tests", { body, signal });
          window.location.hash = `#/prompt-lab/${created.id}`;
        } catch (error) {
          showProblem(abProblem, error);
        } finally {
          start.disabled = false;
        }
      },
    },
    h("h2", {}, "A/B test"),
    h("div", { class: "ab-prompts" }, h("div", { class: "field" }, field("Prompt A (original)", original)), h("div", { class: "field" }, field("Prompt B (rewrite)", rewrite))),
    h("div", { class: "field" }, field("Models (one per line or comma-separated)", abModels, "Two or more models compare the models too, side by side.")),
    h(
      "fieldset",
      { class: "hyperparameters" },
      h("legend", {}, "Sampling"),
      h("div", { class: "field" }, field("Samples per model and prompt", samples)),
      h("div", { class: "field" }, field("Temperature", temperature)),
      h("div", { class: "field" }, field("Max tokens", maxTokens)),
      h("div", { class: "field" }, field("Seed (optional)", seed)),
    ),
    abProblem,
    h("div", { class: "buttons" }, start),
  );

  const earlier = runs.items.length
    ? h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "fine-tunes-table", "aria-label": "Your A/B runs" },
          h("thead", {}, h("tr", {}, ["Run", "Models", "Status", "Started"].map((name) => h("th", { scope: "col" }, name)))),
          h(
            "tbody",
            {},
            runs.items.map((r) =>
              h(
                "tr",
                {},
                h("th", { scope: "row" }, h("a", { href: `#/prompt-lab/${r.id}` }, `Run ${r.id.slice(0, 8)}`)),
                h("td", {}, r.models.join(", ")),
                h("td", {}, STATUS_TEXT[r.status] || r.status),
                h("td", {}, formatTime(r.created_at)),
              ),
            ),
          ),
        ),
      )
    : h("p", { class: "muted" }, "No A/B runs yet.");

  replace(view, h("h1", {}, "Prompt lab"), h("div", { class: "lab" }, analyseForm, abForm), h("h2", {}, "Your A/B runs"), earlier);
  return () => page.abort();
}

function suggestionList(suggestions, useRewrite) {
  if (!suggestions.length) return h("p", { class: "muted" }, "No rewrite suggested: nothing to change.");
  return h(
    "ul",
    { class: "suggestions" },
    suggestions.map((s) =>
      h(
        "li",
        { class: "card suggestion" },
        h("p", { class: "muted" }, s.method === "model" ? `Rewritten by ${s.model}` : `Rule-based (${s.changes.length} change${s.changes.length === 1 ? "" : "s"})`),
        h("p", { class: "suggestion-text" }, s.text),
        h("button", { type: "button", onclick: () => useRewrite(s.text) }, "Use in the A/B test"),
      ),
    ),
  );
}

function analysisView(answer, useRewrite) {
  const parts = [h("h3", {}, answer.flagged ? "Potential bias found" : "No bias found")];
  const lexicon = answer.lexicon;
  if (lexicon) {
    parts.push(
      h(
        "section",
        { class: "finding", "aria-label": "Lexicon" },
        h("h4", {}, `Lexicon: ${lexicon.flagged ? "flagged" : "not flagged"}`),
        marked(answer.prompt, lexicon.findings),
        lexicon.findings.length
          ? h("ul", {}, lexicon.findings.map((f) => h("li", {}, `“${f.term}” — ${f.category}${f.group ? ` (${f.group})` : ""}, characters ${f.start} to ${f.end}`)))
          : h("p", { class: "muted" }, "No listed terms."),
      ),
    );
  }
  const cf = answer.counterfactual;
  if (cf) {
    parts.push(
      h(
        "section",
        { class: "finding", "aria-label": "Counterfactual swap" },
        h("h4", {}, `Counterfactual swap: ${cf.performed ? (cf.flagged ? "flagged" : "not flagged") : "not run"}`),
        cf.performed
          ? [
              h("p", {}, `Swapped prompt: ${cf.swapped_prompt}`),
              h(
                "div",
                { class: "side-by-side" },
                h("div", { class: "card" }, h("h5", {}, "Original answer"), h("p", { class: "answer-text" }, cf.original_output || "")),
                h("div", { class: "card" }, h("h5", {}, "Swapped answer"), h("p", { class: "answer-text" }, cf.swapped_output || "")),
              ),
              h("p", {}, `Similarity ${num(cf.similarity)}, valence difference ${num(cf.valence_difference)}. ${cf.rule}`),
            ]
          : h("p", { class: "muted" }, cf.reason || ""),
      ),
    );
  }
  const judge = answer.judge;
  if (judge) {
    parts.push(
      h(
        "section",
        { class: "finding", "aria-label": "Model judgement" },
        h("h4", {}, `Model judgement: ${judge.performed ? (judge.verdict || "unclear").replaceAll("_", " ") : "not run"}`),
        h("p", { class: judge.performed ? "answer-text" : "muted" }, judge.performed ? judge.explanation || "" : judge.reason || ""),
      ),
    );
  }
  parts.push(h("h3", {}, "Suggested rewrites"), suggestionList(answer.suggestions, useRewrite));
  return parts;
}

// ---- one A/B run -----------------------------------------------------------------------------

async function renderRun(view, runId) {
  const page = new AbortController();
  const signal = page.signal;
  const path = `/api/v1/prompt-lab/ab-tests/${runId}`;
  let run = await api.api("GET", path, { signal });
  const status = h("p", { class: "fine-tune-status lab-status", role: "status", "aria-live": "polite" });
  const body = h("div", { class: "ab-results" });
  const saved = h("p", { class: "muted", role: "status" });
  let timer = null;

  function exportButton(label, format) {
    const button = h(
      "button",
      {
        type: "button",
        onclick: async () => {
          button.disabled = true;
          try {
            await download(`${path}/export?format=${format}`, `ab-test-${run.id}.${format}`);
            saved.textContent = `Downloaded ${label}.`;
          } catch (error) {
            saved.textContent = `Download failed: ${error instanceof api.ApiError ? error.detail : error.message}`;
          } finally {
            button.disabled = false;
          }
        },
      },
      `Download ${label}`,
    );
    return button;
  }

  function show() {
    const said = `Status: ${STATUS_TEXT[run.status] || run.status}${run.error ? ` — ${run.error}` : ""}`;
    if (status.textContent !== said) status.textContent = said;
    if (run.status === "completed" && !body.firstChild) {
      replace(
        body,
        h("div", { class: "exports", role: "group", "aria-label": "Export this run" }, exportButton("JSON", "json"), exportButton("CSV", "csv")),
        saved,
        run.models.map((model) => modelResults(run, model)),
        run.models.length > 1 ? modelsSideBySide(run) : null,
        h("details", { class: "report-raw" }, h("summary", {}, "Raw run (JSON)"), jsonTree(run, { label: "A/B run" })),
      );
    }
  }

  async function poll() {
    if (signal.aborted || FINAL.has(run.status)) return;
    try {
      run = await api.api("GET", path, { signal });
      show();
    } catch (error) {
      if (signal.aborted) return;
      status.textContent = `Could not read the run: ${error instanceof api.ApiError ? error.detail : error.message}`;
    }
    if (!FINAL.has(run.status)) timer = setTimeout(poll, POLL_MS);
  }

  replace(
    view,
    h("p", {}, h("a", { href: "#/prompt-lab" }, "‹ Prompt lab")),
    h("h1", {}, "A/B run"),
    status,
    h(
      "div",
      { class: "side-by-side ab-prompts-shown" },
      h("section", { class: "card", "aria-label": "Prompt A (original)" }, h("h2", {}, "A: original"), h("p", { class: "answer-text" }, run.original)),
      h("section", { class: "card", "aria-label": "Prompt B (rewrite)" }, h("h2", {}, "B: rewrite"), h("p", { class: "answer-text" }, run.rewrite)),
    ),
    h("p", { class: "muted" }, `${run.models.join(", ")} · ${run.samples} sample${run.samples === 1 ? "" : "s"} each · started ${formatTime(run.created_at)}`),
    body,
  );
  show();
  if (!FINAL.has(run.status)) timer = setTimeout(poll, POLL_MS);
  return () => {
    clearTimeout(timer);
    page.abort();
  };
}

function modelResults(run, model) {
  const summary = (run.summary || {})[model];
  if (!summary) return h("section", { class: "ab-model" }, h("h2", {}, model), h("p", { class: "muted" }, "No answers."));
  const series = [{ label: "A: original" }, { label: "B: rewrite" }];
  const rows = (metrics) => metrics.map(([key, label]) => ({ label, values: [summary.original[key], summary.rewrite[key]] }));
  const table = h(
    "table",
    { class: "chart-table ab-table" },
    h("caption", {}, `${model}: means per answer`),
    h("thead", {}, h("tr", {}, ["Metric", "A: original", "B: rewrite", "B − A"].map((name) => h("th", { scope: "col" }, name)))),
    h(
      "tbody",
      {},
      [...BIAS_METRICS, ...QUALITY_METRICS].map(([key, label]) => {
        const difference = summary.difference[key];
        return h(
          "tr",
          { class: difference ? "changed" : null, "data-metric": key },
          h("th", { scope: "row" }, label),
          h("td", {}, num(summary.original[key])),
          h("td", {}, num(summary.rewrite[key])),
          h("td", {}, difference == null ? "—" : `${difference > 0 ? "+" : ""}${num(difference)}`),
        );
      }),
    ),
  );
  const outputs = (arm) => run.outputs.filter((o) => o.model === model && o.arm === arm).sort((a, b) => a.sample - b.sample);
  const answers = (arm, label) =>
    h(
      "section",
      { class: "card", "aria-label": `${model}, ${label} answers` },
      h("h3", {}, `${label} answers`),
      h(
        "ol",
        { class: "ab-outputs" },
        outputs(arm).map((o) => h("li", {}, h("p", { class: "answer-text" }, o.text), h("p", { class: "field-hint" }, `${o.completion_tokens} tokens, ${num(o.latency_ms, 0)} ms`))),
      ),
    );
  return h(
    "section",
    { class: "ab-model", "aria-label": `Results on ${model}` },
    h("h2", {}, model),
    h(
      "div",
      { class: "charts" },
      barChart({ title: `${model}: bias measures`, rows: rows(BIAS_METRICS), series, max: 1 }),
      barChart({ title: `${model}: consistency and confidence`, rows: rows(QUALITY_METRICS.slice(0, 2)), series, min: -1, max: 1 }),
    ),
    h("div", { class: "table-scroll" }, table),
    h("div", { class: "side-by-side" }, answers("original", "A: original"), answers("rewrite", "B: rewrite")),
  );
}

/** With several models: each metric of each model's rewrite arm, the models as series. */
function modelsSideBySide(run) {
  const series = run.models.map((model) => ({ label: model }));
  const metrics = [...BIAS_METRICS, ...QUALITY_METRICS.slice(0, 2)];
  return h(
    "section",
    { class: "ab-models", "aria-label": "The models side by side" },
    h("h2", {}, "The models side by side"),
    h(
      "div",
      { class: "charts" },
      ["original", "rewrite"].map((arm) =>
        barChart({
          title: `Models compared: ${arm === "original" ? "A: original" : "B: rewrite"}`,
          rows: metrics.map(([key, label]) => ({ label, values: run.models.map((m) => ((run.summary || {})[m] || {})[arm]?.[key] ?? null) })),
          series,
          max: 1,
        }),
      ),
    ),
  );
}
