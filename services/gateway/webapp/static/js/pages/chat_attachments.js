// Attachments: files given to a conversation as context. They are uploaded as soon as they are
// picked or dropped on the composer (the API extracts and counts their text), listed there with
// a way to take them back until the next message is sent, and shown on the message they went
// with afterwards. Attachments belong to the conversation (every later turn sees them): "went
// with" is the first user message sent after the upload.
import * as api from "../api.js";
import { h, nextId, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { download } from "./chat_files.js";

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

/** The attachments shown on a sent message. */
export function attachmentList(base, attachments) {
  if (!attachments.length) return null;
  return h(
    "ul",
    { class: "attachments", "aria-label": "Attachments" },
    attachments.map((a) =>
      h("li", { class: "attachment", "data-attachment-id": a.id }, fileButton(base, a), h("span", { class: "size" }, ` ${describe(a)}`)),
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
