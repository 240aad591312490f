// Charts drawn by uPlot (vendor/uplot, MIT: small, fast, canvas, no dependencies, an ES module
// that runs under the app's CSP — it styles elements through the CSSOM, never inline markup).
// Here: the shared plumbing. A plot sits in a box named and described for screen readers (the
// canvas says nothing to them; every chart also has a table of its numbers beside it), takes
// the app's colours from its CSS variables, follows its box's width (phones included), and is
// destroyed once its box leaves the page. Pages build their charts in pages/fine_tune_chart.js
// and pages/model_stats.js.
import uPlot from "/app/vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";

// The width a plot is made at before its box is on the page and measured.
const FIRST_WIDTH = 600;
const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** The app's colours (app.css `:root`), read when a chart is made, so a theme applies to it. */
export function palette() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: read("--muted", "#5b6470"),
    grid: read("--line", "#d9dde3"),
    series: (cls) => read(`--${cls}`, "#2f5bd3"),
  };
}

/** Axis options in the app's colours. */
export function axis(colors, options = {}) {
  return {
    stroke: colors.text,
    font: FONT,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { stroke: colors.grid, width: 1, size: 4 },
    ...options,
  };
}

/**
 * Bars for one of `count` series side by side over categories 0..n-1 (an x scale ranging
 * [-0.5, n - 0.5]): each category's group takes `share` of its slot, each bar 1/count of that.
 * Works whichever way the x scale runs (horizontal bars have an x scale with ori 1).
 */
export function groupedBars(index, count, categories, share = 0.8) {
  const slot = share / count;
  return uPlot.paths.bars({
    disp: {
      x0: { unit: 1, values: (u) => u.data[0].map((c) => c - share / 2 + index * slot + slot * 0.05) },
      size: { unit: 2, values: () => [(slot * 0.9) / Math.max(categories, 1)] },
    },
  });
}

/**
 * A uPlot chart in a box with `attrs` (role, aria names): `options` as uPlot takes them, less
 * the width, which follows the box. Returns the box and the plot (`plot.setData` updates it).
 */
export function plotBox(options, data, attrs = {}) {
  const box = h("div", { class: "plot-box", ...attrs });
  // No drag-to-zoom: the charts are small, their tables hold every number, and a live chart's
  // next update would reset the zoom anyway. The cursor still shows values in the legend.
  const plot = new uPlot({ width: FIRST_WIDTH, cursor: { drag: { x: false, y: false, setScale: false } }, ...options }, data, box);
  // uPlot's legend (values under the cursor) repeats what the table says: out of the a11y tree.
  plot.root.querySelector(".u-legend")?.setAttribute("aria-hidden", "true");
  let seen = false;
  let frame = 0;
  const observer = new ResizeObserver(() => {
    if (!box.isConnected) {
      // Gone from the page (a new page, redrawn stats): let the plot and its listeners go.
      if (seen) {
        observer.disconnect();
        cancelAnimationFrame(frame);
        plot.destroy();
      }
      return;
    }
    seen = true;
    // Resized in the next frame, so the resize is not itself a change seen in this round.
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      const width = Math.floor(box.clientWidth);
      if (width > 0 && width !== plot.width) plot.setSize({ width, height: plot.height });
    });
  });
  observer.observe(box);
  return { box, plot };
}
