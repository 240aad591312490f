// A fine-tune's loss over its steps, drawn as inline SVG built with DOM calls (no HTML
// strings): training loss and, when there is a validation file, validation loss. The image
// has a text summary for screen readers, and the same numbers sit beside it in a table.
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

function s(tag, attrs = {}, text = null) {
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
