// Sign up and log in. The session is the login cookie plus an access token in memory.
import * as api from "../api.js";
import { field, h } from "../dom.js";
import { guarded } from "../ui.js";

function authCard(title, form, ...footer) {
  return h("section", { class: "auth card", "aria-labelledby": "auth-title" }, h("h1", { id: "auth-title" }, title), form, ...footer);
}

export function renderLogin(main) {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          await api.login(username.value.trim(), password.value);
          window.location.hash = "#/";
        }, submit);
      },
    },
    field("Username or email", username),
    field("Password", password),
    submit,
  );
  main.append(
    authCard(
      "Log in",
      form,
      h("p", {}, h("a", { href: "#/forgot-password" }, "Forgot your password?")),
      h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
    ),
  );
  username.focus();
}

export function renderSignup(main) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, pattern: "[A-Za-z0-9_]{3,32}" });
  const email = h("input", { name: "email", type: "email", autocomplete: "email", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Create account");
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          await api.register(username.value.trim(), email.value.trim(), password.value);
          window.location.hash = "#/";
        }, submit);
      },
    },
    field("Username", username, "3 to 32 letters, digits or underscores."),
    field("Email", email),
    field("Password", password, "Letters mixed with digits or symbols; not your username."),
    submit,
  );
  main.append(authCard("Create an account", form, h("p", {}, "Have an account? ", h("a", { href: "#/login" }, "Log in"))));
  username.focus();
}
