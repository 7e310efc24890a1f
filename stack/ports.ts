// Free TCP ports on the loopback interface, for servers that the stack starts.
import { createServer } from "node:net";

/** Asks the kernel for a free port (bind to 0) and releases it again. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

/** True when nothing listens on the port yet. */
export function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** The preferred port when it is free, else any free port. */
export async function preferredPort(preferred: number | undefined, host = "127.0.0.1"): Promise<number> {
  if (preferred !== undefined && preferred > 0 && (await portIsFree(preferred, host))) return preferred;
  return freePort(host);
}

/** Resolves once fn succeeds; retries every intervalMs until timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`${what} was not ready after ${Math.round(timeoutMs / 1000)} s: ${reason}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
