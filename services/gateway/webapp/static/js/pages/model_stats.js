// A model's stats over time: requests, tokens and latency p50/p95 per day, drawn as inline SVG
// built with DOM calls (no chart library, no HTML strings). Each chart is an image with a
// text summary for screen readers and a table of the same numbers beside it.
import * as api from "../api.js";
import { h, nextId, replace } from "../dom.js";

// SVG's namespace, as the HTML parser assigns it to <svg> (a constant string, no text of anyone's):
// the app's files name no URL at all (tests/gateway/test_webapp_files.py).
const SVG = new DOMParser().parseFromString("<svg></svg>", "text/html").body.firstChild.namespaceURI;
const WIDTH = 600;
const HEIGHT = 200;
const PAD = { top: 12, right: 12, bottom: 28, left: 52 };
const RANGES = [
  [7, "7 days"],
  [30, "30 days"],
  [90, "90 days"],
];

/** An SVG element: like h(), attributes only (text goes in with .textContent). */
function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) element.append(child);
  return element;
}

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
  const titleId = nextId("chart");
  const descId = nextId("chart-desc");
  const values = series.flatMap((one) => days.map((d) => d[one.key]).filter((v) => v != null));
  const max = niceMax(Math.max(0, ...values));
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const slot = innerW / Math.max(days.length, 1);
  const x = (i) => PAD.left + slot * (i + 0.5);
  const y = (v) => PAD.top + innerH - (v / max) * innerH;

  const grid = [0, 0.5, 1].map((f) => {
    const value = max * f;
    return s(
      "g",
      { class: "chart-grid" },
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      Object.assign(s("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }), {
        textContent: tick(value),
      }),
    );
  });
  // A day label at the ends and the middle, so a 90-day axis stays legible.
  const labelled = new Set([0, Math.floor((days.length - 1) / 2), days.length - 1]);
  const axis = days.map((d, i) =>
    labelled.has(i)
      ? Object.assign(s("text", { x: x(i), y: HEIGHT - 8, "text-anchor": "middle", class: "chart-axis" }), {
          textContent: d.day.slice(5),
        })
      : null,
  );

  const bars = series.filter((one) => one.kind === "bar");
  const barWidth = Math.max(1, (slot * 0.8) / Math.max(bars.length, 1));
  const marks = series.map((one) => {
    if (one.kind === "bar") {
      const offset = bars.indexOf(one);
      return s(
        "g",
        { class: one.cls },
        days.map((d, i) => {
          const v = d[one.key] || 0;
          const rect = s("rect", {
            x: x(i) - (slot * 0.8) / 2 + offset * barWidth,
            y: y(v),
            width: barWidth,
            height: Math.max(0, PAD.top + innerH - y(v)),
          });
          rect.append(Object.assign(s("title"), { textContent: `${d.day}: ${number(v)} ${one.label}` }));
          return rect;
        }),
      );
    }
    // A line through the days that have a value; a day without requests breaks it.
    let path = "";
    let pen = false;
    const dots = [];
    days.forEach((d, i) => {
      const v = d[one.key];
      if (v == null) {
        pen = false;
        return;
      }
      path += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      const dot = s("circle", { cx: x(i), cy: y(v), r: 3 });
      dot.append(Object.assign(s("title"), { textContent: `${d.day}: ${one.label} ${number(v)} ms` }));
      dots.push(dot);
    });
    return s("g", { class: one.cls }, path ? s("path", { d: path }) : null, dots);
  });

  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "aria-describedby": descId,
      class: "chart",
    },
    grid,
    axis,
    marks,
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
    svg,
    h(
      "ul",
      { class: "chart-legend", "aria-hidden": "true" },
      series.map((one) => h("li", {}, h("span", { class: `swatch ${one.cls}` }), one.label)),
    ),
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
