#!/usr/bin/env node
// The `medloop` command: runs cli/main.ts through tsx in this same process (no build
// step), so that signals such as Ctrl-C reach the command directly.
import { register } from "tsx/esm/api";
import { fileURLToPath } from "node:url";
import path from "node:path";

register();
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { main } = await import(path.join(root, "cli", "main.ts"));
const code = await main(process.argv.slice(2));
process.exitCode = code;
