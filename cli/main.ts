// `medloop <command> …`: dispatches to cli/commands/<command>.ts. Each command
// exports `run(argv): Promise<number>` (the exit code) and a one-line `summary`.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface Command {
  run(argv: string[]): Promise<number>;
  summary: string;
}

const commandsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "commands");

async function commandNames(): Promise<string[]> {
  const files = await readdir(commandsDir);
  return files
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_"))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function loadCommand(name: string): Promise<Command> {
  const mod = (await import(pathToFileURL(path.join(commandsDir, `${name}.ts`)).href)) as Partial<Command>;
  if (typeof mod.run !== "function" || typeof mod.summary !== "string") {
    throw new Error(`cli/commands/${name}.ts must export run() and summary`);
  }
  return mod as Command;
}

async function help(): Promise<string> {
  const lines = ["usage: medloop <command> [options]", "", "commands:"];
  const names = await commandNames();
  const width = Math.max(4, ...names.map((n) => n.length)) + 2;
  for (const name of names) {
    const command = await loadCommand(name);
    lines.push(`  ${name.padEnd(width)}${command.summary}`);
  }
  lines.push(`  ${"help".padEnd(width)}show this list; \`medloop <command> --help\` shows a command's options`);
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(await help());
    return name ? 0 : 2;
  }
  const names = await commandNames();
  if (!/^[a-z][a-z-]*$/.test(name) || !names.includes(name)) {
    console.error(`medloop: unknown command "${name}" (known: ${names.join(", ")}); see medloop help`);
    return 2;
  }
  try {
    const command = await loadCommand(name);
    return await command.run(rest);
  } catch (err) {
    // A command's expected failures are printed by the command; this is the last line of defence.
    console.error(`medloop ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
