// A model's stats over time: requests, tokens and latency p50/p95 per day, drawn by uPlot
// (../charts.js). Each chart is an image named and described for screen readers, with a table
// of the same numbers beside it.
import * as api from "../api.js";
import { axis, groupedBars, palette, plotBox } from "../charts.js";
import { h, nextId, replace } from "../dom.js";

const HEIGHT = 200;
const RANGES = [
  [7, "7 days"],
  [30, "30 days"],
  [90, "90 days"],
];

function number(value) {
  return value == null ? "—" : Math.round(value).toLocaleString("en");
}

/** An axis label: small maxima keep their fraction (0.5, 2.5). */
function tick(value) {
  return value.toLocaleString("en", { maximumFractionDigits: 1 });
}

/** A round maximum for the y axis, at least `value`. */
function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= value);
  return step * magnitude;
}

/**
 * One chart of `days` (the API's per-day entries) with `series`: [{key, label, kind: "bar" |
 * "line", cls}] sharing one axis; `unit` names the axis.
 */
function chart(title, unit, days, series) {
  const colors = palette();
  const titleId = nextId("chart");
  const descId = nextId("chart-desc");
  const values = series.flatMap((one) => days.map((d) => d[one.key]).filter((v) => v != null));
  const max = niceMax(Math.max(0, ...values));
  const bars = series.filter((one) => one.kind === "bar");
  const { box } = plotBox(
    {
      height: HEIGHT,
      // The days are categories 0..n-1, labelled by their date (every day, or every few).
      scales: {
        x: { time: false, range: () => [-0.5, days.length - 0.5] },
        y: { range: () => [0, max] },
      },
      axes: [
        axis(colors, {
          grid: { show: false },
          space: 48,
          incrs: [1, 2, 3, 5, 7, 10, 14, 15, 30, 45, 90],
          values: (u, splits) => splits.map((i) => (Number.isInteger(i) && days[i] ? days[i].day.slice(5) : "")),
        }),
        axis(colors, { size: 52, values: (u, splits) => splits.map(tick) }),
      ],
      series: [
        { label: "Day", value: (u, i) => days[i]?.day ?? "" },
        ...series.map((one) => {
          const color = colors.series(one.cls);
          if (one.kind === "bar") {
            return {
              label: one.label,
              fill: color,
              stroke: color,
              width: 0,
              paths: groupedBars(bars.indexOf(one), bars.length, days.length),
              points: { show: false },
              value: (u, v) => number(v),
            };
          }
          // A line through the days that have a value; a day without requests breaks it.
          return { label: one.label, stroke: color, width: 2, points: { show: true, size: 6, fill: color }, value: (u, v) => (v == null ? "—" : `${number(v)} ms`) };
        }),
      ],
    },
    [days.map((_, i) => i), ...series.map((one) => days.map((d) => (one.kind === "bar" ? d[one.key] || 0 : d[one.key] ?? null)))],
    { role: "img", "aria-labelledby": titleId, "aria-describedby": descId, class: "plot-box" },
  );

  const used = days.filter((d) => series.some((one) => d[one.key]));
  const summary = series
    .map((one) => {
      const vs = days.map((d) => d[one.key]).filter((v) => v != null);
      if (one.kind === "bar") return `${one.label}: ${number(vs.reduce((a, b) => a + b, 0))} in all`;
      return vs.length ? `${one.label}: from ${number(Math.min(...vs))} to ${number(Math.max(...vs))} ms` : `${one.label}: no data`;
    })
    .join("; ");
  const description = `${days.length} days from ${days[0].day} to ${days[days.length - 1].day}, ${used.length} with use. ${summary}.`;

  const table = h(
    "table",
    { class: "chart-table" },
    h("caption", {}, `${title} per day`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day"), series.map((one) => h("th", { scope: "col" }, one.label)))),
    h(
      "tbody",
      {},
      days.map((d) => h("tr", {}, h("th", { scope: "row" }, d.day), series.map((one) => h("td", {}, number(d[one.key]))))),
    ),
  );
  return h(
    "figure",
    { class: "chart-figure", "data-chart": title },
    h("figcaption", { id: titleId }, `${title} (${unit})`),
    box,
    h("p", { id: descId, class: "visually-hidden" }, description),
    h("details", {}, h("summary", {}, `${title}: the numbers`), h("div", { class: "table-wrap" }, table)),
  );
}

/** The totals the model carries (`model.stats`) as a definition list, kept current by the page. */
export function showTotals(totals, model) {
  const stats = model.stats;
  const rows = [
    ["Used", `${stats.usage_count} times`],
    ["Tokens generated", String(stats.tokens_generated)],
    ["Average latency", stats.avg_latency_ms != null ? `${Math.round(stats.avg_latency_ms)} ms` : "—"],
    ["p95 latency", stats.p95_latency_ms != null ? `${Math.round(stats.p95_latency_ms)} ms` : "—"],
    ["Likes", String(model.likes_count)],
  ];
  replace(totals, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** The stats section: the `totals` list, then per-day charts over a chosen range. */
export function statsSection(model, totals, signal) {

  const charts = h("div", { class: "charts", "aria-live": "polite", "aria-busy": "true" });
  const range = h(
    "select",
    { name: "days", "aria-label": "Stats period" },
    RANGES.map(([value, label]) => h("option", { value: String(value) }, label)),
  );
  range.value = "30";
  const note = h("p", { class: "muted", role: "status" });

  async function load() {
    charts.setAttribute("aria-busy", "true");
    try {
      const series = await api.api("GET", `/api/v1/usage/models/${model.id}/daily?days=${range.value}`, { signal });
      const days = series.days.map((d) => ({ ...d, tokens: d.prompt_tokens + d.completion_tokens }));
      const any = days.some((d) => d.requests);
      note.textContent = any ? "" : `No use in the last ${range.value} days.`;
      replace(
        charts,
        chart("Requests", "per day", days, [{ key: "requests", label: "Requests", kind: "bar", cls: "series-a" }]),
        chart("Tokens", "per day", days, [
          { key: "prompt_tokens", label: "Prompt tokens", kind: "bar", cls: "series-b" },
          { key: "completion_tokens", label: "Completion tokens", kind: "bar", cls: "series-a" },
        ]),
        chart("Latency", "milliseconds", days, [
          { key: "p50_latency_ms", label: "p50", kind: "line", cls: "series-a" },
          { key: "p95_latency_ms", label: "p95", kind: "line", cls: "series-c" },
        ]),
      );
    } catch (error) {
      if (error.name === "AbortError") return;
      // The totals still stand; the charts say why they are missing.
      replace(charts, h("p", { class: "error-text", role: "alert" }, `Stats over time are unavailable: ${error.detail || error.message}`));
    } finally {
      charts.setAttribute("aria-busy", "false");
    }
  }
  range.addEventListener("change", load);
  load();
  return h(
    "section",
    { "aria-labelledby": "stats-heading", class: "model-stats" },
    h("div", { class: "thread-head" }, h("h2", { id: "stats-heading" }, "Stats"), range),
    totals,
    note,
    charts,
  );
}
