// The top bar: the pages the user's role may open, the user, log out.

import type { User } from "../api/types.js";
import { logout } from "../session.js";
import { h } from "./dom.js";

const LINKS: Array<{ href: string; label: string; roles: string[] }> = [
  { href: "#/inbox", label: "Inbox", roles: ["doctor"] },
  { href: "#/projects", label: "Projects", roles: ["lab_lead"] },
  { href: "#/reviews", label: "Reviews", roles: ["reviewer", "lab_lead"] },
  { href: "#/reports", label: "Time savings", roles: ["auditor", "lab_lead"] },
  { href: "#/audit", label: "Audit log", roles: ["auditor", "lab_lead"] },
  { href: "#/outbox", label: "Outbox", roles: ["lab_lead"] },
];

export function renderLayout(user: User, hash: string): HTMLElement {
  const links = LINKS.filter((l) => user.role === "admin" || l.roles.includes(user.role));
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/" }, "medloop"),
    h(
      "nav",
      {},
      links.map((l) => h("a", { href: l.href, class: hash.startsWith(l.href) ? "active" : "" }, l.label)),
    ),
    h(
      "div",
      { class: "who" },
      h("span", { "data-testid": "whoami" }, `${user.name} · ${user.role.replace("_", " ")}`),
      h(
        "button",
        {
          class: "link",
          onclick: async () => {
            await logout();
            location.hash = "#/login";
            location.reload();
          },
        },
        "Log out",
      ),
    ),
  );
}
