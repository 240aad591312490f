// Thumbs up or down on an answer, with an optional comment: the caller's own rating, which the
// conversation read carries as `message.feedback` (PUT sets or replaces it, DELETE takes it back).
import * as api from "../api.js";
import { field, h } from "../dom.js";
import { guarded } from "../ui.js";

const LABELS = { up: "Good answer", down: "Bad answer" };
// Words, not emoji: a machine without an emoji font would show empty boxes.
const ICONS = { up: "▲ Good", down: "▼ Bad" };

/**
 * The feedback controls of one finished answer. `url` is its …/feedback endpoint; `changed`
 * gets the new feedback (or null) once the API has taken it.
 */
export function feedbackControls(message, url, changed) {
  const current = message.feedback || null;
  const thumb = (rating) => {
    const pressed = current?.rating === rating;
    const button = h(
      "button",
      {
        type: "button",
        class: `thumb thumb-${rating}`,
        "aria-pressed": pressed ? "true" : "false",
        "aria-label": LABELS[rating],
        title: LABELS[rating],
        onclick: () =>
          guarded(async () => {
            if (pressed) {
              await api.api("DELETE", url);
              changed(null, "Rating removed.");
            } else {
              const body = { rating, comment: current?.comment ?? null };
              const saved = await api.api("PUT", url, { body });
              changed({ rating: saved.rating, comment: saved.comment }, `Rated: ${LABELS[rating].toLowerCase()}.`);
            }
          }, button),
      },
      ICONS[rating],
    );
    return button;
  };
  const comment = current
    ? h("button", { type: "button", class: "link comment-toggle", "aria-expanded": "false" }, current.comment ? "Edit comment" : "Add a comment")
    : null;
  const group = h(
    "span",
    { class: "feedback", role: "group", "aria-label": "Rate this answer" },
    thumb("up"),
    thumb("down"),
    comment,
  );
  const shown = current?.comment ? h("p", { class: "feedback-comment" }, `Your comment: ${current.comment}`) : null;
  if (comment) {
    comment.addEventListener("click", () => {
      const open = comment.getAttribute("aria-expanded") === "true";
      if (open) return;
      comment.setAttribute("aria-expanded", "true");
      group.after(commentForm(current, url, changed, () => comment.setAttribute("aria-expanded", "false")));
    });
  }
  return { group, shown };
}

/** The optional comment that goes with a rating. */
export function commentForm(current, url, changed, closed = () => {}) {
  const text = h("textarea", { name: "feedback-comment", rows: 2, maxlength: 2000, value: current.comment || "" });
  const save = h("button", { type: "submit", class: "primary" }, "Save comment");
  const form = h(
    "form",
    {
      class: "feedback-form",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const body = { rating: current.rating, comment: text.value.trim() || null };
          const saved = await api.api("PUT", url, { body });
          changed({ rating: saved.rating, comment: saved.comment }, saved.comment ? "Comment saved." : "Comment removed.");
        }, save);
      },
    },
    field("Comment on this answer (optional)", text),
    h(
      "div",
      { class: "buttons" },
      save,
      h("button", { type: "button", onclick: () => { form.remove(); closed(); } }, "Cancel"),
    ),
  );
  queueMicrotask(() => text.focus());
  return form;
}
