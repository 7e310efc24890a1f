// Vite builds the browser UI from web/ into web/dist, which the API process serves.
// In development (`npm run web:dev`) /api is proxied to the API on 127.0.0.1:8080
// (MEDLOOP_API_URL overrides it).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root,
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: {
      "/api": { target: process.env.MEDLOOP_API_URL ?? "http://127.0.0.1:8080", changeOrigin: true },
    },
  },
});
