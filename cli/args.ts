// Option parsing shared by the commands: node's parseArgs with strict checking, so
// an unknown or malformed option is a one-line error instead of being ignored.
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parse<T extends Options>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

export function intOption(label: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new UsageError(`${label} must be an integer >= ${min}, got "${raw}"`);
  return value;
}

/** Runs a command body, turning UsageError and other errors into a message and an exit code. */
export async function guard(command: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`medloop ${command}: ${err.message}\n${usage}`);
      return 2;
    }
    console.error(`medloop ${command}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
