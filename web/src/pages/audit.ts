// The append-only audit log, newest first, filterable, paged by id. A submission whose timing
// the server corrected carries `flags` and the times as `sent`; it is marked in the list. Above
// it, the hash chain's verification (GET /audit/verify): whether the log is as it was written,
// the first broken row if not, and the chain's head to keep elsewhere.

import { api, asList, type Query } from "../api/client.js";
import type { AuditChainReport, AuditRow } from "../api/types.js";
import { formatDate, h } from "../ui/dom.js";
import type { Page } from "./page.js";

const PAGE = 100;

export const auditPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Audit log"));
  const entity = h("input", { placeholder: "entity (task, campaign, …)" });
  const action = h("input", { placeholder: "action (task.submit, …)" });
  const tbody = h("tbody", {});
  const more = h("button", {}, "Older entries");
  let oldest: number | null = null;

  async function load(reset: boolean): Promise<void> {
    if (reset) {
      tbody.replaceChildren();
      oldest = null;
    }
    const q: Query = { limit: PAGE, entity: entity.value.trim() || undefined, action: action.value.trim() || undefined, before_id: oldest ?? undefined };
    const rows = asList<AuditRow>(await api.get("/audit", q));
    for (const r of rows) {
      tbody.appendChild(
        h(
          "tr",
          {},
          h("td", { class: "num" }, r.id),
          h("td", {}, formatDate(r.at)),
          h("td", {}, r.actor_email ?? (r.actor_id === null ? "system" : `user ${r.actor_id}`)),
          h(
            "td",
            {},
            r.action,
            Array.isArray(r.details.flags) && r.details.flags.length > 0
              ? [" ", h("span", { class: "badge flagged", "data-testid": "audit-flagged", title: "the server corrected the times sent; see details.sent" }, `⚑ ${r.details.flags.join(", ")}`)]
              : null,
          ),
          h("td", {}, `${r.entity} ${r.entity_id ?? ""}`),
          h("td", {}, h("code", {}, JSON.stringify(r.details))),
        ),
      );
      oldest = Number(r.id);
    }
    more.disabled = rows.length < PAGE;
  }

  // The chain: verified on opening and on request, against a head kept earlier when one is given.
  const chain = h("div", { class: "card", "data-testid": "audit-chain" });
  const keptHead = h("input", { placeholder: "a head kept earlier (SEQ:HASH), optional", size: 60, "data-testid": "kept-head" });
  async function verify(): Promise<void> {
    const head = keptHead.value.trim();
    chain.replaceChildren(h("p", { class: "muted" }, "Verifying the hash chain…"));
    const r = await api.get<AuditChainReport>("/audit/verify", head ? { head } : {});
    const headText = r.head ? `${r.head.chain_seq}:${r.head.hash}` : null;
    chain.replaceChildren(
      r.ok
        ? h("p", { class: "ok", "data-testid": "chain-status" }, `The audit chain holds: ${r.rows} rows, each hash recomputed${head ? ", and the kept head is in it as it was" : ""}.`)
        : h(
            "p",
            { class: "error", "data-testid": "chain-status" },
            `The audit chain is broken at row ${r.broken!.id}${r.broken!.chain_seq === null ? "" : ` (position ${r.broken!.chain_seq})`}: ${r.broken!.reason}. ${r.rows} rows before it hold.`,
          ),
      headText
        ? h(
            "p",
            {},
            "Head to keep somewhere else (a later check against it also catches a rewritten chain): ",
            h("code", { "data-testid": "chain-head" }, headText),
            " ",
            h("button", { type: "button", onclick: () => void navigator.clipboard?.writeText(headText) }, "Copy"),
          )
        : "",
    );
  }

  more.addEventListener("click", () => void load(false));
  root.append(
    h(
      "form",
      { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); void verify(); } },
      keptHead,
      h("button", { type: "submit", "data-testid": "verify-chain" }, "Verify the chain"),
    ),
    chain,
    h(
      "form",
      { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); void load(true); } },
      entity,
      action,
      h("button", { type: "submit" }, "Filter"),
    ),
    h("table", { class: "grid", "data-testid": "audit" }, h("thead", {}, h("tr", {}, ["#", "When", "Who", "Action", "Entity", "Details"].map((c) => h("th", {}, c)))), tbody),
    h("p", {}, more),
  );
  await Promise.all([load(true), verify()]);
};
