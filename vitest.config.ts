import { defineConfig } from "vitest/config";

// Test files run one at a time: several of them start real servers (Temporal,
// PostgreSQL databases, SMTP, the Python worker) and the CI machine has two cores.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});
