"""Helpers for the web app's uPlot charts: a chart is a canvas inside a `.uplot` element, in a
box named as an image, and drawn in the app's colours (counted on the canvas, not guessed).

Exports: painted, expect_plot, expect_fits.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import Locator, expect

# Pixels of the canvas within a small distance of a CSS variable's colour (e.g. "--series-a").
_PAINTED = """
(canvas, variable) => {
  const probe = document.createElement("span");
  probe.style.color = `var(${variable})`;
  document.body.append(probe);
  const [r, g, b] = getComputedStyle(probe).color.match(/\\d+/g).map(Number);
  probe.remove();
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    const near = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
    if (data[i + 3] > 200 && near < 40) count += 1;
  }
  return count;
}
"""


async def painted(chart: Locator, variable: str) -> int:
    """How many of `chart`'s canvas pixels are about the colour of CSS `variable`."""
    canvas = chart.locator(".uplot canvas")
    await expect(canvas).to_have_count(1)
    return int(await canvas.evaluate(_PAINTED, variable))


async def expect_plot(chart: Locator, *variables: str) -> None:
    """`chart` (the image box) holds a uPlot canvas with something drawn in each colour."""
    await expect(chart.locator(".uplot canvas")).to_have_count(1)
    await expect(chart.locator(".uplot canvas")).to_be_visible()
    for variable in variables:
        # uPlot draws in the frame after a resize: look again for a few seconds.
        for _ in range(50):
            count = await painted(chart, variable)
            if count > 10:
                break
            await asyncio.sleep(0.1)
        assert count > 10, f"{variable}: {count} pixels"


async def expect_fits(chart: Locator) -> None:
    """`chart`'s plot is as wide as its box (resized to it, at a phone's width too)."""
    widths: tuple[float, float] = (0.0, 0.0)
    for _ in range(50):
        widths = await chart.evaluate(
            "(box) => [box.clientWidth, box.querySelector('.uplot').getBoundingClientRect().width]"
        )
        if widths[0] > 0 and abs(widths[0] - widths[1]) <= 1:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the box is {widths[0]} px wide, its plot {widths[1]} px")
