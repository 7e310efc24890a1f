// The field cases (../shared/fieldcases next to the repository, or MEDLOOP_FIELDCASES): small
// files rebuilt from inputs that broke other tools, each with its right result in cases.json.
// Read in place; never copied into the repository.
import { readFileSync } from "node:fs";
import path from "node:path";

export interface FieldItem {
  image: string;
  mask: string;
  fov?: string;
  prediction?: string;
  duplicate?: string;
  expected: "accept" | "refuse";
  width?: number;
  height?: number;
  mask_foreground?: number;
  mask_foreground_tolerance?: number;
  fov_foreground?: number;
  why?: string;
  pages?: number;
}

export interface FieldCase {
  id: string;
  title: string;
  expected: "accept" | "refuse";
  mask_suffix: string;
  items: FieldItem[];
}

const repoRoot = path.resolve(import.meta.dirname, "../..");

export function fieldcasesDir(): string {
  return process.env.MEDLOOP_FIELDCASES ?? path.resolve(repoRoot, "../shared/fieldcases");
}

export function loadCases(): FieldCase[] {
  return (JSON.parse(readFileSync(path.join(fieldcasesDir(), "cases.json"), "utf8")) as { cases: FieldCase[] }).cases;
}

export function fieldCase(id: string): FieldCase {
  const found = loadCases().find((c) => c.id === id);
  if (!found) throw new Error(`field case ${id} is not in cases.json`);
  return found;
}

/** The absolute path of a file of a case. */
export function caseFile(id: string, rel: string): string {
  return path.join(fieldcasesDir(), id, rel);
}
