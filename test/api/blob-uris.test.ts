// Folder and file URIs (docs/architecture.md "Blob URIs"): joinUri (services/blobs.ts) and the
// engine's join_uri (ml/src/medloop_ml/blobs.py) give the same URI, or refuse with the same
// reason, for every case of test/api/fixtures/join_uri_cases.json; the blob store resolves folder
// URIs with or without the trailing "/".
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobStore, joinUri } from "../../services/blobs.js";
import { repoRoot } from "../../services/config.js";

interface Case {
  folder: string;
  name: string;
  expected?: string;
  error?: string;
}
const casesFile = path.join(repoRoot, "test/api/fixtures/join_uri_cases.json");

async function cases(): Promise<Case[]> {
  return (JSON.parse(await readFile(casesFile, "utf8")) as { cases: Case[] }).cases;
}

function tsJoin(c: Case): { uri?: string; error?: string } {
  try {
    return { uri: joinUri(c.folder, c.name) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe("joinUri", () => {
  it("gives the expected URI or refuses naming the reason, for every case", async () => {
    for (const c of await cases()) {
      const got = tsJoin(c);
      if (c.expected !== undefined) expect(got, JSON.stringify(c)).toEqual({ uri: c.expected });
      else expect(got.error, JSON.stringify(c)).toContain(c.error);
    }
  });

  it("agrees with the engine's join_uri on every case (URI or error message)", async () => {
    const script = [
      "import json, sys",
      "from medloop_ml.blobs import BlobUriError, join_uri",
      "out = []",
      "for c in json.load(open(sys.argv[1]))['cases']:",
      "    try: out.append({'uri': join_uri(c['folder'], c['name'])})",
      "    except BlobUriError as e: out.append({'error': str(e)})",
      "print(json.dumps(out))",
    ].join("\n");
    const { stdout } = await promisify(execFile)(path.join(repoRoot, ".venv/bin/python"), ["-c", script, casesFile], { cwd: repoRoot });
    const python = JSON.parse(stdout) as Array<{ uri?: string; error?: string }>;
    const all = await cases();
    expect(python).toHaveLength(all.length);
    all.forEach((c, i) => expect(python[i], JSON.stringify(c)).toEqual(tsJoin(c)));
  });
});

describe("the blob store with folder URIs", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "medloop-blob-uris-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("resolves a folder URI with or without the trailing slash, and writes at a joined URI", async () => {
    const blobs = new BlobStore(root);
    // The URI the campaign records for a round's model (it once failed with "invalid blob key").
    expect(blobs.pathOf("blob://runs/1/round-2/model/")).toBe(path.join(root, "runs/1/round-2/model"));
    expect(blobs.pathOf("blob://runs/1/round-2/model")).toBe(path.join(root, "runs/1/round-2/model"));
    const uri = await blobs.put(joinUri("blob://runs/1/round-2/model/", "model.json"), Buffer.from("{}"));
    expect(uri).toBe("blob://runs/1/round-2/model/model.json");
    expect((await blobs.get(uri)).toString()).toBe("{}");
    await expect(blobs.get("blob://runs/1/round-2/model/")).rejects.toThrow(/names a folder, not a file/);
    expect(() => blobs.pathOf("blob://runs/../x/")).toThrow(/invalid blob key/);
  });
});
