// Your account: the profile (display name, bio, model developer) and API keys (the secret
// shown once, at creation; revoke).
import * as api from "../api.js";
import { field, formatTime, h, replace } from "../dom.js";
import { guarded } from "../ui.js";
import { verificationBlock } from "./recovery.js";

const KEYS = "/api/v1/users/me/api-keys";
const SCOPES = ["read", "write", "inference"];

export async function renderAccount(view) {
  const page = new AbortController();
  const signal = page.signal;
  const me = await api.api("GET", "/api/v1/users/me", { signal });

  // ---- profile
  const displayName = h("input", { name: "display_name", maxlength: 100, value: me.display_name || "" });
  const bio = h("textarea", { name: "bio", rows: 3, maxlength: 1000, value: me.bio || "" });
  const developer = h("input", { type: "checkbox", name: "is_model_developer", id: "developer", checked: me.is_model_developer });
  const profileSaved = h("p", { class: "status-line", role: "status" });
  const saveProfile = h("button", { type: "submit", class: "primary" }, "Save profile");
  const profile = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "profile-title",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const updated = await api.api("PATCH", "/api/v1/users/me", {
            body: {
              display_name: displayName.value.trim() || null,
              bio: bio.value.trim() || null,
              is_model_developer: developer.checked,
            },
          });
          Object.assign(api.user(), updated);
          profileSaved.textContent = "Profile saved.";
        }, saveProfile);
      },
    },
    h("h2", { id: "profile-title" }, "Profile"),
    h("p", { class: "muted" }, `@${me.username} · ${me.email}`),
    verificationBlock(me),
    field("Display name", displayName),
    field("Bio", bio),
    h("p", {}, developer, h("label", { for: "developer", class: "inline" }, "I create models (model developer)")),
    saveProfile,
    profileSaved,
  );

  // ---- API keys
  const keysBody = h("tbody");
  const shown = h("div", { class: "card secret", hidden: true, role: "status" });
  async function loadKeys() {
    const keys = await api.api("GET", KEYS, { signal });
    replace(
      keysBody,
      keys.map((key) => {
        const revoke = h("button", { type: "button" }, "Revoke");
        revoke.addEventListener("click", () =>
          guarded(async () => {
            await api.api("DELETE", `${KEYS}/${key.id}`);
            await loadKeys();
          }, revoke),
        );
        return h(
          "tr",
          { "data-key-id": key.id },
          h("td", {}, key.name),
          h("td", {}, `${key.key_prefix}…`),
          h("td", {}, key.scopes.join(", ")),
          h("td", {}, formatTime(key.created_at)),
          h("td", {}, key.last_used_at ? formatTime(key.last_used_at) : "never"),
          h("td", {}, key.revoked_at ? `revoked ${formatTime(key.revoked_at)}` : key.expires_at ? `expires ${formatTime(key.expires_at)}` : "active"),
          h("td", {}, key.revoked_at ? null : revoke),
        );
      }),
    );
    if (!keys.length) keysBody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No API keys yet.")));
  }
  const keyName = h("input", { name: "name", required: true, maxlength: 100 });
  const scopeBoxes = SCOPES.map((scope) => h("input", { type: "checkbox", value: scope, id: `scope-${scope}`, checked: true }));
  const expires = h("input", { type: "date", name: "expires_at" });
  const create = h("button", { type: "submit", class: "primary" }, "Create key");
  const keyForm = h(
    "form",
    {
      class: "card",
      "aria-label": "Create an API key",
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const body = { name: keyName.value.trim(), scopes: scopeBoxes.filter((b) => b.checked).map((b) => b.value) };
          if (expires.value) body.expires_at = new Date(`${expires.value}T00:00:00Z`).toISOString();
          const created = await api.api("POST", KEYS, { body });
          keyName.value = "";
          const secret = h("code", { class: "key-secret" }, created.key);
          replace(
            shown,
            h("p", {}, h("strong", {}, `Your new key “${created.name}”: copy it now, it is shown only once.`)),
            h("p", {}, secret),
          );
          shown.hidden = false;
          await loadKeys();
        }, create);
      },
    },
    h("h3", {}, "New key"),
    field("Name", keyName),
    h(
      "fieldset",
      {},
      h("legend", {}, "Scopes"),
      scopeBoxes.map((box) => h("span", {}, box, h("label", { for: box.id, class: "inline" }, box.value))),
    ),
    field("Expires (optional)", expires),
    create,
  );

  replace(
    view,
    h("h1", {}, "Account"),
    profile,
    h("h2", {}, "API keys"),
    h("p", { class: "muted" }, "Keys work anywhere a token does (Authorization: Bearer llm_…), limited to their scopes."),
    shown,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "versions", "aria-label": "API keys" },
        h("thead", {}, h("tr", {}, ["Name", "Key", "Scopes", "Created", "Last used", "State", ""].map((t) => h("th", { scope: "col" }, t)))),
        keysBody,
      ),
    ),
    keyForm,
  );
  await loadKeys();
  return () => page.abort();
}
