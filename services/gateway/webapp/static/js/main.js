// The shell: session restore, navigation, the router (on the URL's fragment: #/chat/<id>).
import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { clearError, showError } from "./ui.js";
import { renderAccount } from "./pages/account.js";
import { renderAdmin } from "./pages/admin.js";
import { renderExplore } from "./pages/explore.js";
import { renderEvaluation, renderEvaluations } from "./pages/evaluations.js";
import { renderPromptLab } from "./pages/prompt_lab.js";
import { renderFineTune, renderFineTunes } from "./pages/fine_tunes.js";
import { renderPerson } from "./pages/people.js";
import { renderForgotPassword, renderResetPassword, renderVerifyEmail } from "./pages/recovery.js";
import { renderLogin, renderSignup } from "./pages/auth.js";
import { renderChat } from "./pages/chat.js";
import { renderHome } from "./pages/home.js";
import { renderModel, renderModelNew, renderModels } from "./pages/models.js";
import { renderNotifications } from "./pages/notifications.js";
import * as notifications from "./notifications.js";
import { renderThread } from "./pages/thread.js";

const main = document.getElementById("main");
let cleanup = null;

const ROUTES = [
  { pattern: /^\/login$/, page: renderLogin, title: "Log in", public: true },
  { pattern: /^\/signup$/, page: renderSignup, title: "Sign up", public: true },
  { pattern: /^\/forgot-password$/, page: renderForgotPassword, title: "Forgot password", public: true },
  // The mailed links' pages: opened signed in or not.
  { pattern: /^\/reset-password$/, page: renderResetPassword, title: "Reset password", public: true, anyone: true },
  { pattern: /^\/verify-email$/, page: renderVerifyEmail, title: "Verify email", public: true, anyone: true },
  { pattern: /^\/explore$/, page: renderExplore, title: "Explore" },
  { pattern: /^\/people\/([A-Za-z0-9_]{1,32})$/, page: renderPerson, title: "Profile" },
  { pattern: /^\/admin(?:\/(users|audit|quotas|moderation))?$/, page: renderAdmin, title: "Admin" },
  { pattern: /^\/chat(?:\/([0-9a-f-]{36}))?$/, page: renderChat, title: "Chat" },
  { pattern: /^\/posts\/([0-9a-f-]{36})$/, page: renderThread, title: "Thread" },
  { pattern: /^\/models$/, page: renderModels, title: "Models" },
  { pattern: /^\/models\/new$/, page: renderModelNew, title: "Create a model" },
  { pattern: /^\/models\/([0-9a-f-]{36})$/, page: renderModel, title: "Model" },
  { pattern: /^\/fine-tunes$/, page: renderFineTunes, title: "Fine-tunes" },
  { pattern: /^\/fine-tunes\/([0-9a-f-]{36})$/, page: renderFineTune, title: "Fine-tune" },
  { pattern: /^\/evaluations$/, page: renderEvaluations, title: "Evaluations" },
  // One evaluation, or two side by side: #/evaluations/<a>/vs/<b>.
  { pattern: /^\/evaluations\/([0-9a-f-]{36})(?:\/vs\/([0-9a-f-]{36}))?$/, page: renderEvaluation, title: "Evaluation" },
  { pattern: /^\/prompt-lab(?:\/([0-9a-f-]{36}))?$/, page: renderPromptLab, title: "Prompt lab" },
  { pattern: /^\/notifications$/, page: renderNotifications, title: "Notifications" },
  { pattern: /^\/account$/, page: renderAccount, title: "Account" },
  { pattern: /^\/$/, page: renderHome, title: "Home" },
];
const NAV = [
  { href: "#/", label: "Home", match: /^\/(posts\/.*)?$/ },
  { href: "#/chat", label: "Chat", match: /^\/chat/ },
  { href: "#/models", label: "Models", match: /^\/models/ },
  { href: "#/explore", label: "Explore", match: /^\/(explore|people)/ },
  { href: "#/fine-tunes", label: "Fine-tunes", match: /^\/fine-tunes/ },
  { href: "#/evaluations", label: "Evaluations", match: /^\/evaluations/ },
  { href: "#/prompt-lab", label: "Prompt lab", match: /^\/prompt-lab/ },
  { href: "#/admin", label: "Admin", match: /^\/admin/, admin: true },
];

function currentPath() {
  const hash = window.location.hash || "#/";
  return hash.startsWith("#/") ? hash.slice(1).split("?")[0] : "/";
}

export function navigate(path) {
  window.location.hash = `#${path}`;
}

// The unread count beside "Notifications", live.
const badge = h("span", { class: "badge", hidden: true });

let notificationsLink = null;

function showCount(count) {
  badge.hidden = count === 0;
  badge.textContent = count > 99 ? "99+" : String(count);
  if (notificationsLink) {
    notificationsLink.setAttribute("aria-label", count ? `Notifications, ${count} unread` : "Notifications");
  }
}

function renderNav(path) {
  const nav = document.getElementById("nav");
  const account = document.getElementById("account");
  const me = api.user();
  if (!me) {
    replace(nav);
    replace(
      account,
      h("a", { href: "#/login" }, "Log in"),
      h("a", { href: "#/signup", class: "button primary" }, "Sign up"),
    );
    return;
  }
  const current = /^\/notifications/.test(path) ? "page" : null;
  notificationsLink = h("a", { href: "#/notifications", "aria-current": current }, "Notifications", badge);
  replace(
    nav,
    h(
      "ul",
      {},
      NAV.filter((item) => !item.admin || me.role === "admin").map((item) =>
        h("li", {}, h("a", { href: item.href, "aria-current": item.match.test(path) ? "page" : null }, item.label)),
      ),
      h("li", {}, notificationsLink),
    ),
  );
  showCount(notifications.unreadCount());
  const logoutButton = h("button", { type: "button", onclick: () => logOut(logoutButton) }, "Log out");
  replace(
    account,
    h("a", { href: "#/account", "aria-current": path === "/account" ? "page" : null, "aria-label": `Account (@${me.username})` }, `@${me.username}`),
    logoutButton,
  );
}

async function logOut(button) {
  button.disabled = true;
  try {
    await api.logout();
  } catch (error) {
    showError(error);
  }
  navigate("/login");
}

async function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const path = currentPath();
  const found = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  renderNav(path);
  if (!found) {
    document.title = "Not found · llmnet";
    replace(main, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Go home")));
    return;
  }
  const { r, m } = found;
  if (!r.public && !api.user()) {
    navigate("/login");
    return;
  }
  if (r.public && !r.anyone && api.user()) {
    navigate("/");
    return;
  }
  document.title = `${r.title} · llmnet`;
  // Each visit renders into a view of its own: a page still loading when the visitor moves on
  // finishes into its detached view, never over the next page.
  const view = h("div", { class: "view" });
  replace(main, view);
  const visit = new AbortController();
  cleanup = () => visit.abort();
  try {
    const pageCleanup = await r.page(view, ...m.slice(1));
    if (pageCleanup) {
      if (visit.signal.aborted) pageCleanup();
      else visit.signal.addEventListener("abort", pageCleanup);
    }
  } catch (error) {
    if (!visit.signal.aborted) showError(error);
  }
}

async function start() {
  document.getElementById("banner-close").addEventListener("click", clearError);
  document.getElementById("skip").addEventListener("click", () => main.focus());
  window.addEventListener("unhandledrejection", (event) => showError(event.reason));
  window.addEventListener("error", (event) => showError(event.error || event.message));
  try {
    await api.restore();
  } catch (error) {
    showError(error);
  }
  notifications.onCount(showCount);
  if (api.user()) notifications.start(showError);
  api.onSessionChange((me) => {
    if (me) notifications.start(showError);
    else notifications.stop();
    renderNav(currentPath());
    const found = ROUTES.find((r) => r.pattern.test(currentPath()));
    if (!me && found && !found.public) navigate("/login");
  });
  window.addEventListener("hashchange", () => {
    clearError();
    route();
  });
  await route();
}

start();
