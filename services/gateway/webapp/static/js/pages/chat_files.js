// Files out of a conversation: its export (JSON or Markdown) and attachments' originals, fetched
// with the session's token and handed to the browser as a download (or read, for the viewer).
import * as api from "../api.js";
import { h } from "../dom.js";
import { guarded } from "../ui.js";

/** The name a Content-Disposition header gives, else `fallback`. */
export function filenameOf(response, fallback) {
  const header = response.headers.get("content-disposition") || "";
  const encoded = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (encoded) {
    try {
      return decodeURIComponent(encoded[1]);
    } catch {
      // a malformed escape: the plain name below will do
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : fallback;
}

/** Fetch `path` and save it as a file (a link to a Blob, clicked and let go). */
export async function download(path, fallbackName) {
  const response = await api.response("GET", path);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filenameOf(response, fallbackName), hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked a moment later: the click starts the download asynchronously.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Fetch `path` and read it as text (an attachment opened in the viewer). */
export async function fetchText(path) {
  const response = await api.response("GET", path);
  return response.text();
}

function slug(title) {
  return (title || "conversation").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "conversation";
}

/** "Export JSON" and "Export Markdown" buttons for the conversation at `base`. */
export function exportButtons(base, titleOf, status) {
  const button = (label, format, extension) => {
    const element = h(
      "button",
      {
        type: "button",
        class: `export-${format}`,
        onclick: () =>
          guarded(async () => {
            const name = `${slug(titleOf())}.${extension}`;
            await download(`${base}/export?format=${format}`, name);
            status.textContent = `Exported as ${label}.`;
          }, element),
      },
      `Export ${label}`,
    );
    return element;
  };
  return h(
    "div",
    { class: "exports", role: "group", "aria-label": "Export this conversation" },
    button("JSON", "json", "json"),
    button("Markdown", "markdown", "md"),
  );
}
