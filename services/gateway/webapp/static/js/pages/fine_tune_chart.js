// Charts drawn as inline SVG built with DOM calls (no HTML strings), each with a text summary
// for screen readers and the same numbers beside it in a table: a fine-tune's loss over its
// steps (`lossChart`), and labelled horizontal bars, one or more series side by side, that may
// run either side of zero (`barChart`: evaluation reports, prompt-lab A/B runs).
import { h, nextId } from "../dom.js";

// SVG's namespace, as the HTML parser assigns it (the app's files name no URL at all).
const SVG = new DOMParser().parseFromString("<svg></svg>", "text/html").body.firstChild.namespaceURI;
const WIDTH = 600;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 30, left: 52 };
const SERIES = [
  { key: "train_loss", label: "Training loss", cls: "series-a" },
  { key: "validation_loss", label: "Validation loss", cls: "series-c" },
];

export function s(tag, attrs = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  if (text !== null) element.textContent = text;
  return element;
}

export function loss(value) {
  return value == null ? "—" : value.toFixed(4);
}

/** The summary a screen reader hears for the chart. */
function describe(points) {
  if (!points.length) return "No steps reported yet.";
  const first = points[0];
  const last = points[points.length - 1];
  const parts = [`Training loss ${loss(first.train_loss)} at step ${first.step}, ${loss(last.train_loss)} at step ${last.step} of ${last.total_steps}.`];
  const validated = points.filter((p) => p.validation_loss != null);
  if (validated.length) parts.push(`Validation loss ${loss(validated[validated.length - 1].validation_loss)} at step ${validated[validated.length - 1].step}.`);
  return parts.join(" ");
}

/** A figure of `metrics` (the API's progress reports, in step order): chart, legend, table. */
export function lossChart(metrics) {
  const points = metrics.filter((p) => p.step > 0 && (p.train_loss != null || p.validation_loss != null));
  const titleId = nextId("loss-title");
  const descId = nextId("loss-desc");
  const values = points.flatMap((p) => SERIES.map((one) => p[one.key]).filter((v) => v != null));
  const max = values.length ? Math.max(...values) * 1.05 || 1 : 1;
  const min = values.length ? Math.min(0, ...values) : 0;
  const lastStep = Math.max(1, ...points.map((p) => p.total_steps || p.step));
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (step) => PAD.left + (step / lastStep) * innerW;
  const y = (v) => PAD.top + innerH - ((v - min) / (max - min || 1)) * innerH;

  const svg = s("svg", {
    class: "chart loss-chart",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": titleId,
    "aria-describedby": descId,
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.append(s("title", { id: titleId }, "Loss by step"), s("desc", { id: descId }, describe(points)));
  for (const f of [0, 0.5, 1]) {
    const value = min + (max - min) * f;
    const grid = s("g", { class: "chart-grid" });
    grid.append(
      s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      s("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, value.toFixed(2)),
    );
    svg.append(grid);
  }
  for (const [step, anchor] of [
    [0, "start"],
    [Math.round(lastStep / 2), "middle"],
    [lastStep, "end"],
  ]) {
    svg.append(s("text", { x: x(step), y: HEIGHT - 10, "text-anchor": anchor, class: "chart-axis" }, `step ${step}`));
  }
  for (const one of SERIES) {
    const own = points.filter((p) => p[one.key] != null);
    if (!own.length) continue;
    const group = s("g", { class: one.cls, "data-series": one.key });
    group.append(s("path", { d: own.map((p, i) => `${i ? "L" : "M"}${x(p.step).toFixed(1)},${y(p[one.key]).toFixed(1)}`).join(" "), fill: "none" }));
    for (const p of own) group.append(s("circle", { cx: x(p.step).toFixed(1), cy: y(p[one.key]).toFixed(1), r: 2.5 }));
    svg.append(group);
  }

  const legend = h(
    "ul",
    { class: "chart-legend", "aria-hidden": "true" },
    SERIES.map((one) => h("li", {}, h("span", { class: `swatch ${one.cls}` }), one.label)),
  );
  const table = h(
    "table",
    { class: "chart-table" },
    h("caption", {}, "Loss by step"),
    h("thead", {}, h("tr", {}, ["Step", "Epoch", "Training loss", "Validation loss"].map((name) => h("th", { scope: "col" }, name)))),
    h(
      "tbody",
      {},
      points.map((p) =>
        h("tr", {}, h("th", { scope: "row" }, String(p.step)), h("td", {}, p.epoch.toFixed(2)), h("td", {}, loss(p.train_loss)), h("td", {}, loss(p.validation_loss))),
      ),
    ),
  );
  return h(
    "figure",
    { class: "loss-figure" },
    svg,
    legend,
    h("details", { class: "chart-numbers" }, h("summary", {}, `Loss values (${points.length} step${points.length === 1 ? "" : "s"})`), table),
  );
}

// ---- bars ------------------------------------------------------------------------------------

const BAR = 14;
const BAR_GAP = 10;
const LABEL_W = 190;
const BAR_SERIES = ["series-a", "series-c", "series-b"];

function plain(value, digits) {
  if (value == null || Number.isNaN(value)) return "—";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/**
 * A figure of horizontal bars: `rows` [{label, values: [number|null per series]}] against
 * `series` [{label}], on [min, max] (widened to hold every value; zero always shown).
 * `title` names the image (and the table); `note` (the rule behind the numbers) goes under it.
 */
export function barChart({ title, rows, series = [{ label: "Value" }], min = 0, max = null, digits = 3, note = null }) {
  const titleId = nextId("bar-title");
  const descId = nextId("bar-desc");
  const values = rows.flatMap((row) => row.values.filter((v) => v != null && !Number.isNaN(v)));
  let low = Math.min(min, 0, ...values);
  let high = Math.max(max ?? 0, 0, ...values);
  if (high === low) high = low + 1;
  const group = series.length * BAR + BAR_GAP;
  const height = PAD.top + rows.length * group + PAD.bottom;
  const innerW = WIDTH - LABEL_W - PAD.right;
  const x = (v) => LABEL_W + ((v - low) / (high - low)) * innerW;
  const svg = s("svg", {
    class: "chart bar-chart",
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-labelledby": titleId,
    "aria-describedby": descId,
    preserveAspectRatio: "xMidYMid meet",
  });
  const said = rows.length
    ? rows
        .map((row) => `${row.label}: ${row.values.map((v, i) => (series.length > 1 ? `${series[i].label} ${plain(v, digits)}` : plain(v, digits))).join(", ")}`)
        .join("; ")
    : "No values.";
  svg.append(s("title", { id: titleId }, title), s("desc", { id: descId }, said));
  const bottom = height - PAD.bottom;
  const ticks = low < 0 ? [low, 0, high] : [0, (low + high) / 2, high];
  ticks.forEach((value, i) => {
    const grid = s("g", { class: "chart-grid" });
    // The last tick's text ends at its line, so it is never cut at the right edge.
    grid.append(
      s("line", { x1: x(value), x2: x(value), y1: PAD.top, y2: bottom }),
      s("text", { x: x(value), y: bottom + 16, "text-anchor": i === ticks.length - 1 ? "end" : "middle" }, plain(value, 2)),
    );
    svg.append(grid);
  });
  rows.forEach((row, r) => {
    const top = PAD.top + r * group;
    const label = row.label.length > 26 ? `${row.label.slice(0, 25)}…` : row.label;
    svg.append(s("text", { x: LABEL_W - 6, y: top + (series.length * BAR) / 2 + 4, "text-anchor": "end", class: "chart-axis" }, label));
    row.values.forEach((value, i) => {
      if (value == null || Number.isNaN(value)) return;
      const start = x(Math.max(low, Math.min(0, value)));
      const end = x(Math.max(0, value));
      const bar = s("g", { class: BAR_SERIES[i % BAR_SERIES.length], "data-row": row.label, "data-series": series[i].label });
      bar.append(s("rect", { x: start.toFixed(1), y: top + i * BAR, width: Math.max(1, end - start).toFixed(1), height: BAR - 2 }));
      svg.append(bar);
    });
  });

  const legend =
    series.length > 1
      ? h(
          "ul",
          { class: "chart-legend", "aria-hidden": "true" },
          series.map((one, i) => h("li", {}, h("span", { class: `swatch ${BAR_SERIES[i % BAR_SERIES.length]}` }), one.label)),
        )
      : null;
  const table = h(
    "table",
    { class: "chart-table" },
    h("caption", {}, title),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), series.map((one) => h("th", { scope: "col" }, one.label)))),
    h(
      "tbody",
      {},
      rows.map((row) => h("tr", {}, h("th", { scope: "row" }, row.label), row.values.map((v) => h("td", {}, plain(v, digits))))),
    ),
  );
  return h(
    "figure",
    { class: "chart-figure bar-figure", "data-chart": title },
    h("figcaption", {}, title),
    svg,
    legend,
    note ? h("p", { class: "field-hint" }, note) : null,
    h("details", { class: "chart-numbers" }, h("summary", {}, `${title}: the numbers`), h("div", { class: "table-scroll" }, table)),
  );
}
