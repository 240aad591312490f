// Attachments: files given to a conversation as context. They are uploaded as soon as they are
// picked or dropped on the composer (the API extracts and counts their text), listed there with
// a way to take them back until the next message is sent, and shown on the message they went
// with afterwards. Attachments belong to the conversation (every later turn sees them): "went
// with" is the first user message sent after the upload. A JSON or CSV attachment also opens in
// the viewer (a collapsible tree, a sortable paged table) right under it.
import * as api from "../api.js";
import { h, nextId, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { download, fetchText } from "./chat_files.js";
import { viewer } from "./viewer.js";

const ACCEPT = ".txt,.md,.json,.csv,.docx,.pdf";

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function describe(attachment) {
  const parts = [formatSize(attachment.size), `${attachment.tokens} tokens`];
  if (attachment.truncated) parts.push("cut to fit");
  return parts.join(" · ");
}

/** A download button for an attachment's original file. */
function fileButton(base, attachment) {
  const button = h(
    "button",
    {
      type: "button",
      class: "link attachment-name",
      "aria-label": `Download ${attachment.filename}`,
      onclick: () => guarded(() => download(`${base}/attachments/${attachment.id}/content`, attachment.filename), button),
    },
    attachment.filename,
  );
  return button;
}

/** "json" or "csv" for an attachment the viewer can show (by its recognised kind, else its
 * name's extension), else null. */
export function viewableKind(attachment) {
  if (attachment.kind === "json" || attachment.kind === "csv") return attachment.kind;
  const extension = /\.(json|csv)$/i.exec(attachment.filename || "");
  return extension ? extension[1].toLowerCase() : null;
}

// The viewers open now, by attachment id: the chat redraws its messages (and the composer its
// list) often, and an open viewer, with its sorting and open branches, outlives each redraw.
const openViewers = new Map();

/** The attachment's original file, fetched through the API, as a tree or a table. */
async function viewerContent(base, attachment, kind) {
  const text = await fetchText(`${base}/attachments/${attachment.id}/content`);
  if (kind === "csv") return viewer(text, { label: attachment.filename });
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return h("p", { class: "error-text" }, `${attachment.filename} is not valid JSON: ${error.message}`);
  }
  return viewer(value, { label: attachment.filename });
}

/** "Open in viewer" for a JSON or CSV attachment, with the viewer under it once open; else null. */
function viewerToggle(base, attachment) {
  const kind = viewableKind(attachment);
  if (!kind) return null;
  const panelId = `attachment-viewer-${attachment.id}`;
  const button = h("button", { type: "button", class: "link open-viewer", "aria-controls": panelId });
  const slot = h("div", { class: "attachment-viewer-slot" });
  function show() {
    const open = openViewers.has(attachment.id);
    button.textContent = open ? "Close viewer" : "Open in viewer";
    button.setAttribute("aria-label", open ? `Close the viewer of ${attachment.filename}` : `Open ${attachment.filename} in the viewer`);
    button.setAttribute("aria-expanded", String(open));
    replace(slot, open ? openViewers.get(attachment.id) : null);
  }
  button.addEventListener("click", () => {
    if (openViewers.has(attachment.id)) {
      openViewers.delete(attachment.id);
      show();
      return;
    }
    // Changes inside are not announced by the list's live region: the viewer has its own status.
    const panel = h("div", { class: "attachment-viewer", id: panelId, role: "region", "aria-label": `${attachment.filename} in the viewer`, "aria-live": "off" });
    replace(panel, h("p", { class: "muted" }, "Loading…"));
    openViewers.set(attachment.id, panel);
    show();
    guarded(async () => {
      try {
        replace(panel, await viewerContent(base, attachment, kind));
      } catch (error) {
        openViewers.delete(attachment.id);
        show();
        throw error;
      }
    }, button);
  });
  show();
  return [" ", button, slot];
}

/** The attachments shown on a sent message. */
export function attachmentList(base, attachments) {
  if (!attachments.length) return null;
  return h(
    "ul",
    { class: "attachments", "aria-label": "Attachments" },
    attachments.map((a) =>
      h("li", { class: "attachment", "data-attachment-id": a.id }, fileButton(base, a), h("span", { class: "size" }, ` ${describe(a)}`), viewerToggle(base, a)),
    ),
  );
}

/**
 * For each user message on `path`, the attachments uploaded after the previous user message
 * and before it; the rest (uploaded after the last one) are still waiting in the composer.
 */
export function assignAttachments(attachments, userMessages) {
  const at = (item) => Date.parse(item.created_at);
  const sorted = [...attachments].sort((a, b) => at(a) - at(b));
  const byMessage = new Map();
  let previous = -Infinity;
  for (const message of userMessages) {
    byMessage.set(
      message.id,
      sorted.filter((a) => at(a) > previous && at(a) <= at(message)),
    );
    previous = at(message);
  }
  const pending = sorted.filter((a) => at(a) > previous);
  return { byMessage, pending };
}

/**
 * The composer's attachment area: a file picker, drag and drop onto `dropTarget`, uploads with
 * their names and sizes, "Remove" before sending, and the API's `detail` when one is refused.
 */
export function attachmentPicker(base, dropTarget, initial = []) {
  let pending = [...initial];
  const inputId = nextId("attach");
  const input = h("input", { type: "file", id: inputId, name: "attachments", multiple: true, accept: ACCEPT, class: "visually-hidden" });
  const list = h("ul", { class: "attachments pending", "aria-label": "Files to send", "aria-live": "polite" });
  const errors = h("div", { class: "attachment-errors", role: "alert" });
  const element = h(
    "div",
    { class: "attach" },
    h(
      "div",
      { class: "attach-row" },
      input,
      h("label", { for: inputId, class: "button attach-button" }, "Attach files"),
      h("span", { class: "field-hint" }, "or drop them here (.txt, .md, .json, .csv, .docx, .pdf)"),
    ),
    list,
    errors,
  );

  function draw() {
    replace(
      list,
      pending.map((item) => {
        if (item.uploading) {
          return h("li", { class: "attachment uploading" }, `${item.name} (${formatSize(item.size)}) uploading…`);
        }
        const remove = h(
          "button",
          {
            type: "button",
            class: "link",
            "aria-label": `Remove ${item.filename}`,
            onclick: () =>
              guarded(async () => {
                await api.api("DELETE", `${base}/attachments/${item.id}`);
                pending = pending.filter((p) => p !== item);
                draw();
              }, remove),
          },
          "Remove",
        );
        return h(
          "li",
          { class: "attachment", "data-attachment-id": item.id },
          h("span", { class: "attachment-name" }, item.filename),
          h("span", { class: "size" }, ` ${describe(item)}`),
          item.note ? h("span", { class: "field-hint" }, ` ${item.note}`) : null,
          " ",
          remove,
          viewerToggle(base, item),
        );
      }),
    );
  }

  async function upload(file) {
    const placeholder = { uploading: true, name: file.name, size: file.size };
    pending.push(placeholder);
    draw();
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const attachment = await api.api("POST", `${base}/attachments`, { form });
      pending[pending.indexOf(placeholder)] = attachment;
    } catch (error) {
      pending = pending.filter((p) => p !== placeholder);
      const detail = error instanceof api.ApiError ? error.detail : error.message;
      errors.append(h("p", { class: "error" }, `${file.name}: ${detail}`));
    } finally {
      draw();
    }
  }

  const inflight = new Set();
  async function add(files) {
    errors.replaceChildren();
    const uploads = Promise.all([...files].map(upload));
    inflight.add(uploads);
    try {
      await uploads;
    } finally {
      inflight.delete(uploads);
    }
  }

  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = "";
    add(files);
  });
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const dragging = (on) => dropTarget.classList.toggle("dragging", on);
  dropTarget.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault();
    depth += 1;
    dragging(true);
  });
  dropTarget.addEventListener("dragover", (event) => {
    if (!event.dataTransfer?.types.includes("Files")) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  dropTarget.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) dragging(false);
  });
  dropTarget.addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files.length) return;
    event.preventDefault();
    depth = 0;
    dragging(false);
    add(event.dataTransfer.files);
  });

  draw();
  return {
    element,
    busy: () => inflight.size > 0,
    /** Resolves once every upload under way has finished (or failed). */
    settled: async () => {
      while (inflight.size) await Promise.all(inflight);
    },
    /** Sent: what was waiting now belongs to the message just sent. */
    sent: () => {
      const taken = pending;
      pending = [];
      errors.replaceChildren();
      draw();
      return taken;
    },
  };
}
