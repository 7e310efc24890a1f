// Every PostgreSQL advisory lock key medloop takes, in one place, so that two features never
// share one by accident (a shared key serialises unrelated work and can deadlock). The values
// are arbitrary and constant; db/migrations/085_audit_chain.sql spells AUDIT_CHAIN in SQL, and
// test/api/migrations.test.ts checks that it does and that the keys differ.
export const LOCK_KEYS = {
  /** db/migrate.ts: one migrator at a time (session lock). */
  MIGRATIONS: 740_218_113,
  /** services/tasks.ts: a doctor picked and the task stored, one assignment at a time. */
  TASK_ASSIGNMENT: 740_218_114,
  /** services/users.ts: changes of roles and active flags that touch the admins. */
  ADMIN_CHANGE: 740_218_115,
  /** db/migrations/085_audit_chain.sql: audit rows sealed into the hash chain one at a time. */
  AUDIT_CHAIN: 740_218_116,
} as const;
