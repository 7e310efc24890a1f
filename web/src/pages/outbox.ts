// The local outbox: the e-mails medloop sent (when no SMTP server is configured), with
// their task links, so a demo needs no mail server.

import { api, asList } from "../api/client.js";
import { formatDate, h } from "../ui/dom.js";
import type { OutboxMessage as Message } from "../api/types.js";
import type { Page } from "./page.js";

export const outboxPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Outbox"));
  const messages = asList<Message>(await api.get("/outbox", { limit: 100 }));
  if (!messages.length) root.appendChild(h("p", { class: "muted" }, "No e-mail sent yet."));
  for (const m of messages) {
    root.appendChild(
      h("details", { class: "card", style: { marginBottom: "0.5rem" } },
        h("summary", {}, `${formatDate(m.sentAt)} · to ${m.to} · ${m.subject}`),
        h("pre", { class: "mail" }, m.text),
      ),
    );
  }
};
