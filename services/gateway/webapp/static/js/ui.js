// The error banner and small shared bits of the shell.
import { ApiError } from "./api.js";
import { field, h } from "./dom.js";

/** Show what went wrong: the API's `detail` for an API error, else the error's message. */
export function showError(error) {
  if (error && error.name === "AbortError") return;
  const banner = document.getElementById("banner");
  const text = document.getElementById("banner-text");
  let message;
  if (error instanceof ApiError) {
    message = error.detail;
    if (error.requestId) message += ` (request ${error.requestId})`;
  } else {
    message = (error && error.message) || String(error);
  }
  text.textContent = message;
  banner.hidden = false;
}

export function clearError() {
  document.getElementById("banner").hidden = true;
}

/** Run `action`, showing any failure in the banner. With the `button` that started it (a
 * person's action), the last error goes and the button stays disabled meanwhile. */
export async function guarded(action, button = null) {
  if (button) {
    button.disabled = true;
    clearError();
  }
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A search form that looks as you type (after a pause) and on submit, with a "More" button:
 * `load(true)` starts a new search, `load(false)` reads the next page. */
export function searchForm({ label, fieldLabel, hint, input, more, load }) {
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => guarded(() => load(true)), 300);
  });
  more.addEventListener("click", () => guarded(() => load(false), more));
  return h(
    "form",
    {
      role: "search",
      "aria-label": label,
      onsubmit: (event) => {
        event.preventDefault();
        clearTimeout(timer);
        guarded(() => load(true));
      },
    },
    field(fieldLabel, input, hint),
  );
}
