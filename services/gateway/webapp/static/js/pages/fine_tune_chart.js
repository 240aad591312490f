// Charts drawn by uPlot (../charts.js), each named and described for screen readers with the
// same numbers beside it in a table: a fine-tune's loss over its steps (`lossChart`, updated in
// place as progress arrives), and labelled horizontal bars, one or more series side by side,
// that may run either side of zero (`barChart`: evaluation reports, prompt-lab A/B runs).
import { axis, groupedBars, palette, plotBox } from "../charts.js";
import { h, nextId, replace } from "../dom.js";

const LOSS_HEIGHT = 220;
const SERIES = [
  { key: "train_loss", label: "Training loss", cls: "series-a" },
  { key: "validation_loss", label: "Validation loss", cls: "series-c" },
];

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

function lossPoints(metrics) {
  return metrics.filter((p) => p.step > 0 && (p.train_loss != null || p.validation_loss != null));
}

/**
 * A figure of `metrics` (the API's progress reports, in step order): chart, and its numbers as
 * a table. Returns `{figure, update(metrics)}`: `update` redraws the same plot with the new
 * steps (uPlot's setData) and rewrites the table and the summary.
 */
export function lossChart(metrics) {
  const colors = palette();
  let points = lossPoints(metrics);
  const lastStep = () => Math.max(1, ...points.map((p) => p.total_steps || p.step));
  const data = () => [points.map((p) => p.step), ...SERIES.map((one) => points.map((p) => p[one.key] ?? null))];
  const descId = nextId("loss-desc");
  const description = h("p", { id: descId, class: "visually-hidden" });
  const { box, plot } = plotBox(
    {
      height: LOSS_HEIGHT,
      scales: {
        x: { time: false, range: () => [0, lastStep()] },
        y: {
          range: (u, low, high) => (low == null ? [0, 1] : [Math.min(0, low), high * 1.05 || 1]),
        },
      },
      axes: [
        axis(colors, { label: "Step", size: 28, labelSize: 18, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }),
        axis(colors, { size: 48, values: (u, splits) => splits.map((v) => v.toFixed(2)) }),
      ],
      series: [
        { label: "Step", value: (u, v) => (v == null ? "—" : String(v)) },
        ...SERIES.map((one) => ({
          label: one.label,
          stroke: colors.series(one.cls),
          width: 2,
          spanGaps: true, // validation runs at some steps only: one line through them
          points: { show: true, size: 5, fill: colors.series(one.cls) },
          value: (u, v) => loss(v),
        })),
      ],
    },
    data(),
    { role: "img", "aria-label": "Loss by step", "aria-describedby": descId, class: "plot-box loss-chart" },
  );
  const body = h("tbody");
  const summary = h("summary");
  const table = h(
    "table",
    { class: "chart-table" },
    h("caption", {}, "Loss by step"),
    h("thead", {}, h("tr", {}, ["Step", "Epoch", "Training loss", "Validation loss"].map((name) => h("th", { scope: "col" }, name)))),
    body,
  );

  function update(next) {
    points = lossPoints(next);
    plot.setData(data());
    description.textContent = describe(points);
    summary.textContent = `Loss values (${points.length} step${points.length === 1 ? "" : "s"})`;
    replace(
      body,
      points.map((p) =>
        h("tr", {}, h("th", { scope: "row" }, String(p.step)), h("td", {}, p.epoch.toFixed(2)), h("td", {}, loss(p.train_loss)), h("td", {}, loss(p.validation_loss))),
      ),
    );
  }

  update(metrics);
  const figure = h("figure", { class: "loss-figure" }, box, description, h("details", { class: "chart-numbers" }, summary, table));
  return { figure, update };
}

// ---- bars ------------------------------------------------------------------------------------

const BAR = 14;
const BAR_GAP = 10;
const BAR_PAD = 44; // the value axis under the bars, and a margin above them
const LABEL_W = 190;
const BAR_SERIES = ["series-a", "series-c", "series-b"];

function plain(value, digits) {
  if (value == null || Number.isNaN(value)) return "—";
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

/** `text` cut to about `width` pixels of axis label. */
function clip(text, width) {
  const most = Math.max(4, Math.floor(width / 7));
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

/**
 * A figure of horizontal bars: `rows` [{label, values: [number|null per series]}] against
 * `series` [{label}], on [min, max] (widened to hold every value; zero always shown).
 * `title` names the image (and the table); `note` (the rule behind the numbers) goes under it.
 */
export function barChart({ title, rows, series = [{ label: "Value" }], min = 0, max = null, digits = 3, note = null }) {
  const colors = palette();
  const titleId = nextId("bar-title");
  const descId = nextId("bar-desc");
  const clean = (v) => (v == null || Number.isNaN(v) ? null : v);
  const values = rows.flatMap((row) => row.values.map(clean).filter((v) => v != null));
  const low = Math.min(min, 0, ...values);
  let high = Math.max(max ?? 0, 0, ...values);
  if (high === low) high = low + 1;
  const labels = rows.map((row) => row.label);
  // The labels' column: 190 px on a desktop, at most 40% of a phone's width.
  const labelWidth = (u) => Math.min(LABEL_W, Math.round(u.width * 0.4));
  const said = rows.length
    ? rows
        .map((row) => `${row.label}: ${row.values.map((v, i) => (series.length > 1 ? `${series[i].label} ${plain(v, digits)}` : plain(v, digits))).join(", ")}`)
        .join("; ")
    : "No values.";
  const { box } = plotBox(
    {
      height: BAR_PAD + Math.max(rows.length, 1) * (series.length * BAR + BAR_GAP),
      // Categories down the side (x, turned upright, the first at the top), values across (y).
      scales: {
        x: { time: false, ori: 1, dir: -1, range: () => [-0.5, rows.length - 0.5] },
        y: { ori: 0, range: () => [low, high] },
      },
      axes: [
        axis(colors, {
          side: 3,
          grid: { show: false },
          size: labelWidth,
          splits: () => labels.map((_, i) => i),
          values: (u, splits) => splits.map((i) => clip(labels[i] ?? "", labelWidth(u) - 14)),
        }),
        axis(colors, { side: 2, size: 30, space: 44, values: (u, splits) => splits.map((v) => plain(v, 2)) }),
      ],
      legend: { show: series.length > 1 },
      series: [
        { label: "Item", value: (u, i) => labels[i] ?? "" },
        ...series.map((one, i) => ({
          label: one.label,
          fill: colors.series(BAR_SERIES[i % BAR_SERIES.length]),
          stroke: colors.series(BAR_SERIES[i % BAR_SERIES.length]),
          width: 0,
          paths: groupedBars(i, series.length, rows.length),
          points: { show: false },
          value: (u, v) => plain(v, digits),
        })),
      ],
    },
    [rows.map((_, i) => i), ...series.map((_, i) => rows.map((row) => clean(row.values[i])))],
    { role: "img", "aria-labelledby": titleId, "aria-describedby": descId, class: "plot-box bar-chart" },
  );

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
    h("figcaption", { id: titleId }, title),
    box,
    h("p", { id: descId, class: "visually-hidden" }, said),
    note ? h("p", { class: "field-hint" }, note) : null,
    h("details", { class: "chart-numbers" }, h("summary", {}, `${title}: the numbers`), h("div", { class: "table-scroll" }, table)),
  );
}
