// Markdown for model and user text: parsed by marked with raw HTML turned back into text, then
// sanitised by DOMPurify to a short list of formatting tags. Never raw HTML from the text.
import DOMPurify from "/app/vendor/dompurify/purify.es.mjs";
import { Marked } from "/app/vendor/marked/marked.esm.js";

const ALLOWED_TAGS = [
  "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
  "h1", "h2", "h3", "h4", "h5", "h6", "hr", "a", "table", "thead", "tbody", "tr", "th", "td",
];
const ALLOWED_ATTR = ["href", "title", "start"];

function escapeHtml(text) {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // HTML in the text is shown as the characters it is made of.
    html(token) {
      return escapeHtml(token.text);
    },
    // Headings in a card or an answer sit under the page's own h1 and h2.
    heading(token) {
      const level = Math.min(token.depth + 2, 6);
      return `<h${level}>${this.parser.parseInline(token.tokens)}</h${level}>\n`;
    },
    // Images would load from anywhere (and the CSP would refuse them): shown as links.
    image(token) {
      return escapeHtml(`![${token.text}](${token.href})`);
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
  }
});

/** `text` as a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  const html = marked.parse(text || "", { async: false });
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: [...ALLOWED_ATTR, "target", "rel"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
    RETURN_DOM_FRAGMENT: true,
  });
}
