// Starts an Express app on a free loopback port for a test file.
import express from "express";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";

export interface Running {
  url: string;
  close(): Promise<void>;
}

export async function listen(router: express.Router): Promise<Running> {
  const app = express();
  app.use(router);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
