// An in-memory TaskLinkStore (services/taskLinks.ts) for tests without PostgreSQL (the workflow
// tests' MemoryStore world, the SMTP test): the same contract as pgTaskLinkStore, once per
// nonce, a newer link voiding the task's older unused ones.
import type { TaskLinkRecord, TaskLinkStore } from "../../services/taskLinks.js";

export interface MemoryTaskLinks extends TaskLinkStore {
  links: Array<TaskLinkRecord & { revoked: boolean }>;
}

export function memoryTaskLinkStore(): MemoryTaskLinks {
  const links: MemoryTaskLinks["links"] = [];
  return {
    links,
    async record(link) {
      const known = links.find((l) => l.nonceHash === link.nonceHash);
      if (known) return { expiresAt: known.expiresAt };
      for (const l of links) if (l.taskId === link.taskId) l.revoked = true;
      links.push({ ...link, revoked: false });
      return { expiresAt: link.expiresAt };
    },
  };
}
