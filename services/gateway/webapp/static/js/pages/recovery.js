// Forgot password, the pages the mailed links open (reset password, verify email), and the
// "resend verification" action. A link's token arrives in the fragment's query
// (#/reset-password?token=...): read once, then dropped from the address bar and history.
import * as api from "../api.js";
import { field, h, replace } from "../dom.js";
import { guarded } from "../ui.js";

/** The token of a mailed link, taken out of the URL (so it stays out of history). */
function takeToken(path) {
  const query = (window.location.hash.split("?")[1] || "").trim();
  const token = new URLSearchParams(query).get("token");
  if (token) window.history.replaceState(null, "", `#${path}`);
  return token;
}

function card(title, ...children) {
  return h("section", { class: "auth card", "aria-labelledby": "auth-title" }, h("h1", { id: "auth-title" }, title), ...children);
}

export function renderForgotPassword(view) {
  const login = h("input", { name: "login", autocomplete: "username", required: true, maxlength: 320 });
  const submit = h("button", { type: "submit", class: "primary" }, "Send reset link");
  const sent = h("p", { class: "status-line", role: "status" });
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        guarded(async () => {
          const answer = await api.api("POST", "/api/v1/auth/password/forgot", { body: { login: login.value.trim() } });
          sent.textContent = answer.detail;
        }, submit);
      },
    },
    field("Username or email", login, "We mail a link to the account's address; it works once and expires."),
    submit,
    sent,
  );
  view.append(card("Forgot your password?", form, h("p", {}, h("a", { href: "#/login" }, "Back to log in"))));
  login.focus();
}

export function renderResetPassword(view) {
  const token = takeToken("/reset-password");
  if (!token) {
    view.append(
      card(
        "Reset your password",
        h("p", { role: "alert", class: "error" }, "This page needs the link from the reset mail, and this address has no token."),
        h("p", {}, h("a", { href: "#/forgot-password" }, "Ask for a new link")),
      ),
    );
    return;
  }
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true });
  const confirm = h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Set new password");
  const section = card("Choose a new password");
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        if (password.value !== confirm.value) {
          confirm.setCustomValidity("The two passwords differ.");
          confirm.reportValidity();
          return;
        }
        guarded(async () => {
          await api.api("POST", "/api/v1/auth/password/reset", { body: { token, password: password.value } });
          // The reset ended every login, this one included.
          if (api.user()) await api.logout().catch(() => {});
          replace(
            section,
            h("h1", { id: "auth-title" }, "Password changed"),
            h("p", { role: "status" }, "Your new password is set, and every device was logged out."),
            h("p", {}, h("a", { href: "#/login", class: "button primary" }, "Log in")),
          );
          section.querySelector("a").focus();
        }, submit);
      },
    },
    field("New password", password, "Letters mixed with digits or symbols; not your username."),
    field("Repeat the new password", confirm),
    submit,
  );
  confirm.addEventListener("input", () => confirm.setCustomValidity(""));
  section.append(form, h("p", {}, h("a", { href: "#/forgot-password" }, "Ask for a new link")));
  view.append(section);
  password.focus();
}

export async function renderVerifyEmail(view) {
  const token = takeToken("/verify-email");
  const section = card("Verify your email");
  const status = h("p", { role: "status" }, "Verifying…");
  section.append(status);
  view.append(section);
  const next = () =>
    api.user() ? h("p", {}, h("a", { href: "#/account" }, "Go to your account")) : h("p", {}, h("a", { href: "#/login" }, "Log in"));
  if (!token) {
    replace(status, "This page needs the link from the verification mail, and this address has no token.");
    status.setAttribute("role", "alert");
    status.className = "error";
    section.append(next());
    return;
  }
  try {
    const verified = await api.api("POST", "/api/v1/auth/email/verify", { body: { token } });
    replace(status, `${verified.email} is verified. Thank you!`);
    if (api.user()) api.user().email_verified = true;
  } catch (error) {
    if (error.name === "AbortError") return;
    replace(status, error.detail || error.message);
    status.setAttribute("role", "alert");
    status.className = "error";
    if (api.user()) section.append(h("p", {}, "You can ask for a new link on your account page."));
  }
  section.append(next());
}

/** The account page's email line: verified, or not yet with a "resend" button. */
export function verificationBlock(me) {
  const block = h("div", { class: "verification" });
  if (me.email_verified) {
    block.append(h("p", { class: "verified" }, `✓ ${me.email} is verified.`));
    return block;
  }
  const status = h("p", { class: "status-line", role: "status" });
  const resend = h("button", { type: "button" }, "Resend verification email");
  resend.addEventListener("click", () =>
    guarded(async () => {
      const answer = await api.api("POST", "/api/v1/auth/email/verification");
      status.textContent = answer.detail;
    }, resend),
  );
  block.append(h("p", { class: "unverified" }, `${me.email} is not verified yet: open the link we mailed you.`), resend, status);
  return block;
}
