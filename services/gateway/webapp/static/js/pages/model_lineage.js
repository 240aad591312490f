// A model's versions as their lineage tree: each fine-tuned version nested under the version
// it was trained from (GET /api/v1/models/{id}/lineage), as nested lists a screen reader
// announces level by level.
import * as api from "../api.js";
import { h, replace } from "../dom.js";

function loss(value) {
  return typeof value === "number" ? value.toFixed(3) : null;
}

/** What made a fine-tuned version, in a line: method, base, final losses. */
function origin(node) {
  const lineage = node.lineage || {};
  if (!lineage.fine_tune_id && !node.parent_version_id) return "uploaded";
  const parts = [];
  const method = lineage.method || (lineage.hyperparameters && lineage.hyperparameters.method);
  parts.push(method ? `fine-tuned (${method})` : "fine-tuned");
  if (lineage.base_version_number) parts.push(`from v${lineage.base_version_number}`);
  const train = loss(lineage.final_train_loss);
  if (train) parts.push(`train loss ${train}`);
  const validation = loss(lineage.final_validation_loss);
  if (validation) parts.push(`validation loss ${validation}`);
  return parts.join(", ");
}

function branch(nodes, level) {
  return h(
    "ul",
    { class: level ? "lineage-children" : "lineage", "aria-label": level ? null : "Version lineage" },
    nodes.map((node) =>
      h(
        "li",
        { "data-version": node.number },
        h(
          "span",
          { class: "lineage-node" },
          h("strong", {}, `v${node.number}`),
          node.is_active ? h("span", { class: "pill" }, "active") : null,
          h("span", { class: `status-${node.status}` }, node.status),
          h("span", { class: "muted" }, origin(node)),
        ),
        node.children.length ? branch(node.children, level + 1) : null,
      ),
    ),
  );
}

/** The lineage section, and `load()` to (re)read it: call it whenever the versions change. */
export function lineageSection(base, signal) {
  const tree = h("div", { class: "lineage-tree" });
  async function load() {
    const lineage = await api.api("GET", `${base}/lineage`, { signal });
    if (!lineage.roots.length) {
      replace(tree, h("p", { class: "muted" }, "No versions yet."));
    } else {
      replace(tree, branch(lineage.roots, 0));
    }
  }
  const section = h(
    "section",
    { "aria-labelledby": "lineage-heading" },
    h("h2", { id: "lineage-heading" }, "Version tree"),
    h("p", { class: "field-hint" }, "Fine-tuned versions appear under the version they were trained from."),
    tree,
  );
  return { section, load };
}
