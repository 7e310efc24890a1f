// Entry point: a hash router over the pages. The e-mail's task link arrives as
// /tasks/<id>?doctor=…&exp=…&nonce=…&sig=… (served as this page by the API); it becomes
// #/tasks/<id>. The link is exchanged once for a session that reaches only that task
// (services/taskLinks.ts); a refused link (used, superseded, expired, task closed) leads
// to the login page with the server's reason.

import "./style.css";
import { ApiError, api, getToken, setToken, setUnauthenticatedHandler } from "./api/client.js";
import type { LoginResponse } from "./api/types.js";
import { clear, h, toast } from "./ui/dom.js";
import { renderLayout } from "./ui/layout.js";
import { currentUser, homeFor, loadSession } from "./session.js";
import type { Page } from "./pages/page.js";
import { loginPage } from "./pages/login.js";
import { inboxPage } from "./pages/inbox.js";
import { taskPage } from "./pages/task.js";
import { projectsPage } from "./pages/projects.js";
import { projectPage } from "./pages/project.js";
import { campaignPage } from "./pages/campaign.js";
import { savingsPage } from "./pages/savings.js";
import { auditPage } from "./pages/audit.js";
import { evaluationPage } from "./pages/evaluation.js";
import { outboxPage } from "./pages/outbox.js";
import { reviewsPage } from "./pages/reviews.js";
import { reviewPage } from "./pages/review.js";

interface Route {
  pattern: RegExp;
  page: Page;
  public?: boolean;
}

const routes: Route[] = [
  { pattern: /^#\/login$/, page: loginPage, public: true },
  { pattern: /^#\/inbox$/, page: inboxPage },
  { pattern: /^#\/tasks\/(\d+)$/, page: taskPage },
  { pattern: /^#\/projects$/, page: projectsPage },
  { pattern: /^#\/projects\/(\d+)$/, page: projectPage },
  { pattern: /^#\/campaigns\/(\d+)$/, page: campaignPage },
  { pattern: /^#\/campaigns\/(\d+)\/evaluation$/, page: evaluationPage },
  { pattern: /^#\/reports$/, page: savingsPage },
  { pattern: /^#\/audit$/, page: auditPage },
  { pattern: /^#\/outbox$/, page: outboxPage },
  { pattern: /^#\/reviews$/, page: reviewsPage },
  { pattern: /^#\/reviews\/(\d+)$/, page: reviewPage },
];

const app = document.getElementById("app")!;
let cleanup: (() => void) | void = undefined;
let navSeq = 0;

/** Where to go after logging in (kept across the login page). */
const NEXT_KEY = "medloop.next";
/** Set while the stored token is a task link's session, which reaches that one task only. */
const LINK_SCOPE_KEY = "medloop.linkScope";

function linkTarget(): string | null {
  const m = /^\/tasks\/(\d+)\/?$/.exec(location.pathname);
  return m ? `#/tasks/${m[1]}` : null;
}

async function route(): Promise<void> {
  const seq = ++navSeq;
  const hash = location.hash || "#/";
  const user = currentUser();
  const match = routes.map((r) => ({ r, m: r.pattern.exec(hash) })).find((x) => x.m);
  if (!match || hash === "#/") {
    location.hash = user ? homeFor(user) : "#/login";
    return;
  }
  if (!match.r.public && !user) {
    sessionStorage.setItem(NEXT_KEY, hash);
    location.hash = "#/login";
    return;
  }
  if (typeof cleanup === "function") cleanup();
  cleanup = undefined;
  clear(app);
  const main = h("main", { class: "page" });
  if (user) app.appendChild(renderLayout(user, hash));
  app.appendChild(main);
  try {
    const result = await match.r.page(main, match.m!.slice(1));
    if (seq === navSeq) cleanup = result;
    else if (typeof result === "function") result();
  } catch (err) {
    main.appendChild(h("p", { class: "error" }, `This page could not be loaded: ${(err as Error).message}`));
  }
}

export function afterLogin(): void {
  localStorage.removeItem(LINK_SCOPE_KEY); // a password login is a full session
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  const user = currentUser();
  location.hash = next ?? (user ? homeFor(user) : "#/login");
}

/** The e-mail's signed link logs its doctor in, for that task; a refused one leads to the login page. */
async function loginWithLink(link: string): Promise<void> {
  try {
    const res = await api.post<LoginResponse & { task_id: number }>("/auth/task-link", { link });
    setToken(res.token);
    localStorage.setItem(LINK_SCOPE_KEY, String(res.task_id));
  } catch (err) {
    sessionStorage.setItem(NEXT_KEY, location.hash);
    // The server's message names why (already used, a newer e-mail, expired, task closed or
    // reassigned) and says to log in with the password.
    toast(err instanceof ApiError ? err.message : "The task link could not be checked: please log in.", "error");
  }
}

async function boot(): Promise<void> {
  const target = linkTarget();
  const link = target ? location.href : null;
  // Keep the page on "/" so reloads behave (and the single-use link is not reloaded), and go to the task.
  if (target) history.replaceState(null, "", `/${target}`);
  await loadSession();
  if (!getToken()) localStorage.removeItem(LINK_SCOPE_KEY);
  if (target && link) {
    const params = new URL(link).searchParams;
    const me = currentUser();
    // The link's doctor already logged in with their password keeps that session, and the link
    // stays unused, rather than trading it for a session that reaches this one task only.
    const ownFullSession = me !== null && String(me.id) === params.get("doctor") && localStorage.getItem(LINK_SCOPE_KEY) === null;
    if (params.has("sig") && !ownFullSession) {
      await loginWithLink(link);
      await loadSession();
    } else sessionStorage.setItem(NEXT_KEY, target);
  }
  setUnauthenticatedHandler(() => {
    if (location.hash !== "#/login") {
      sessionStorage.setItem(NEXT_KEY, location.hash);
      location.hash = "#/login";
    }
  });
  window.addEventListener("hashchange", () => void route());
  window.addEventListener("medloop:login", afterLogin);
  await route();
}

void boot();
