// Local blob store. `blob://<key>` names `<root>/<key>`; `file:///abs/path` names any file.
// Writes go to a temporary name in the same folder and are renamed into place, so a reader
// never sees half a file.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { badRequest, notFound } from "./errors.js";

const KEY_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

export function checkKey(key: string): string {
  if (!KEY_RE.test(key) || key.split("/").some((part) => part === "." || part === "..")) {
    throw badRequest(`invalid blob key "${key}"`);
  }
  return key;
}

export class BlobStore {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  uriForKey(key: string): string {
    return `blob://${checkKey(key)}`;
  }

  /** The file behind a `blob://` or `file:///` URI. */
  pathOf(uri: string): string {
    if (uri.startsWith("blob://")) return path.join(this.root, checkKey(uri.slice("blob://".length)));
    if (uri.startsWith("file://")) return fileURLToPath(uri);
    throw badRequest(`unsupported blob URI "${uri}" (expected blob://key or file:///path)`);
  }

  /** The URI for a file: `blob://` inside the root, `file:///` elsewhere. */
  uriOf(filePath: string): string {
    const abs = path.resolve(filePath);
    const rel = path.relative(this.root, abs);
    if (rel && !rel.startsWith("..") && !path.isAbsolute(rel)) return `blob://${rel.split(path.sep).join("/")}`;
    return pathToFileURL(abs).href;
  }

  async put(key: string, data: Buffer | Uint8Array): Promise<string> {
    const target = path.join(this.root, checkKey(key));
    await mkdir(path.dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
    try {
      await writeFile(tmp, data);
      await rename(tmp, target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    return `blob://${key}`;
  }

  async get(uri: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(uri));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw notFound("blob", uri);
      throw err;
    }
  }

  async exists(uri: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(uri))).isFile();
    } catch {
      return false;
    }
  }

  /** Removes a blob or a whole `blob://prefix/` folder; used to undo a failed import. */
  async remove(uriOrPrefix: string): Promise<void> {
    if (!uriOrPrefix.startsWith("blob://")) return; // never delete files outside the store
    const key = uriOrPrefix.slice("blob://".length).replace(/\/+$/, "");
    await rm(path.join(this.root, checkKey(key)), { recursive: true, force: true });
  }
}
