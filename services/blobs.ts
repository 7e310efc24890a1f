// Local blob store. `blob://<key>` names `<root>/<key>`; `file:///abs/path` names any file.
// Writes go to a temporary name in the same folder and are renamed into place, so a reader
// never sees half a file. Folder URIs end with "/" and file URIs never do; `joinUri` is the one
// way to write a URI inside a folder (docs/architecture.md "Blob URIs"; Python:
// medloop_ml.blobs.join_uri, which follows the same rules).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises";
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

/** One segment of a key: the same alphabet as KEY_RE. */
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Percent-encodes one path segment of a `file://` URI as Python's `quote(segment, safe="")` does. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Whether a URI names a folder: folder URIs end with "/", file URIs never do. */
export function isFolderUri(uri: string): boolean {
  return uri.endsWith("/");
}

/**
 * The one way to write a URI inside a folder URI (docs/architecture.md "Blob URIs").
 *
 * - `joinUri(folder)`: the folder's normal form, with exactly one trailing "/"
 *   (`blob://runs/1/model`, `blob://runs/1/model/` and `blob://runs/1/model//` all give
 *   `blob://runs/1/model/`); rows and histories written before the convention lack the "/".
 * - `joinUri(folder, "model.json")`: the file inside it (`blob://runs/1/model/model.json`).
 * - `joinUri(folder, "previews/")`: a sub-folder (`blob://runs/1/model/previews/`).
 *
 * `folder` is `blob://<key>` or `file:///absolute/path`.
 * `name` is relative: "/"-separated segments, none empty, "." or ".."; a trailing "/" makes the
 * result a folder URI. Inside `blob://` every segment must be of the key alphabet
 * (A-Z a-z 0-9 . _ -); inside `file://` segments are percent-encoded.
 * @throws AppError `bad_request` naming the URI or the name and what is wrong with it.
 */
export function joinUri(folder: string, name = ""): string {
  let base: string;
  let blob: boolean;
  if (folder.startsWith("blob://")) {
    blob = true;
    const key = folder.slice("blob://".length).replace(/\/+$/, "");
    base = `blob://${checkKey(key)}/`;
  } else if (folder.startsWith("file:///")) {
    blob = false;
    base = `file://${folder.slice("file://".length).replace(/\/+$/, "")}/`;
  } else {
    throw badRequest(`unsupported folder URI "${folder}" (expected blob://key/ or file:///path/)`);
  }
  if (name === "") return base;
  const subFolder = name.endsWith("/");
  const segments = (subFolder ? name.slice(0, -1) : name).split("/");
  for (const segment of segments) {
    if (segment === "" || segment === "." || segment === "..") {
      throw badRequest(`cannot join "${name}" to ${base}: a relative name has no empty, "." or ".." segments`);
    }
    if (blob && !SEGMENT_RE.test(segment)) {
      throw badRequest(`cannot join "${name}" to ${base}: blob keys use only A-Z a-z 0-9 . _ -`);
    }
  }
  return base + (blob ? segments : segments.map(encodeSegment)).join("/") + (subFolder ? "/" : "");
}

export class BlobStore {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  uriForKey(key: string): string {
    return `blob://${checkKey(key)}`;
  }

  /** The file behind a `blob://` or `file:///` URI; a folder URI (trailing "/") gives the folder. */
  pathOf(uri: string): string {
    if (uri.startsWith("blob://")) {
      return path.join(this.root, checkKey(uri.slice("blob://".length).replace(/\/+$/, "")));
    }
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

  /** Writes a file at a key, or at a `blob://` file URI (e.g. one made by `joinUri`); returns its URI. */
  async put(keyOrUri: string, data: Buffer | Uint8Array): Promise<string> {
    // Unambiguous: ":" is outside the key alphabet, so no key starts with "blob://".
    const key = keyOrUri.startsWith("blob://") ? keyOrUri.slice("blob://".length) : keyOrUri;
    const target = path.join(this.root, checkKey(key));
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
    // Twice at most: a failed import's clean-up (removeEmptyParents) may remove the folder between
    // our mkdir and the write.
    for (let attempt = 1; ; attempt++) {
      await mkdir(path.dirname(target), { recursive: true });
      try {
        await writeFile(tmp, data);
        await rename(tmp, target);
        return `blob://${key}`;
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        if (attempt >= 2 || (err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    }
  }

  async get(uri: string): Promise<Buffer> {
    if (isFolderUri(uri)) throw badRequest(`${uri} names a folder, not a file`);
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

  /**
   * Removes the folders above a removed blob that are left empty, up to (not including) the
   * store's root: after an import that did not commit, `projects/<id>/images/` of a project that
   * never came to be goes too. A folder that still holds anything stays.
   */
  async removeEmptyParents(uri: string): Promise<void> {
    if (!uri.startsWith("blob://")) return;
    let dir = path.dirname(path.join(this.root, checkKey(uri.slice("blob://".length).replace(/\/+$/, ""))));
    while (dir.startsWith(this.root + path.sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): everything above it stays too
      }
      dir = path.dirname(dir);
    }
  }
}
