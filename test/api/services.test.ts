// Building blocks under the API: the blob store's URIs and atomic writes, password hashing,
// and the doctor picked for a new task.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobStore } from "../../services/blobs.js";
import { importImage } from "../../services/images.js";
import { createProject } from "../../services/projects.js";
import { createTask, pickDoctor } from "../../services/tasks.js";
import { hashPassword, seedDemoUsers, verifyPassword } from "../../services/users.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { makeImagePng } from "../helpers/images.js";

describe("blob store", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "medloop-blobs-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("maps blob:// and file:/// URIs to paths and back", async () => {
    const blobs = new BlobStore(root);
    expect(blobs.pathOf("blob://a/b/c.png")).toBe(path.join(root, "a", "b", "c.png"));
    expect(blobs.uriOf(path.join(root, "a", "b", "c.png"))).toBe("blob://a/b/c.png");
    expect(blobs.uriOf("/etc/hosts")).toBe("file:///etc/hosts");
    expect(blobs.pathOf("file:///etc/hosts")).toBe("/etc/hosts");
    expect(() => blobs.pathOf("blob://../etc/passwd")).toThrow(/invalid blob key/);
    expect(() => blobs.pathOf("s3://bucket/key")).toThrow(/unsupported blob URI/);
  });

  it("writes through a temporary name and leaves no temporary files", async () => {
    const blobs = new BlobStore(root);
    const uri = await blobs.put("x/y.bin", Buffer.from("hello"));
    expect(uri).toBe("blob://x/y.bin");
    expect((await blobs.get(uri)).toString()).toBe("hello");
    await blobs.put("x/y.bin", Buffer.from("again"));
    expect((await blobs.get(uri)).toString()).toBe("again");
    expect(await readdir(path.join(root, "x"))).toEqual(["y.bin"]);
    await expect(blobs.get("blob://x/missing.bin")).rejects.toThrow(/not found/);
    await blobs.remove("blob://x");
    expect(await blobs.exists(uri)).toBe(false);
  });
});

describe("users and tasks", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("hashes passwords with a salt and verifies them", async () => {
    const a = await hashPassword("correct horse");
    const b = await hashPassword("correct horse");
    expect(a).not.toBe(b);
    expect(a.startsWith("scrypt$")).toBe(true);
    expect(await verifyPassword("correct horse", a)).toBe(true);
    expect(await verifyPassword("wrong horse", a)).toBe(false);
    expect(await verifyPassword("correct horse", "plain")).toBe(false);
  });

  it("seeds the demo users once and picks the least loaded doctor", async () => {
    const first = await seedDemoUsers(db.pool);
    const again = await seedDemoUsers(db.pool);
    expect(again.map((u) => u.id)).toEqual(first.map((u) => u.id));
    const [d1, d2] = first.filter((u) => u.role === "doctor");
    const blobs = new BlobStore(await mkdtemp(path.join(os.tmpdir(), "medloop-pick-")));
    const project = await createProject(db.pool, { name: "pick" }, null);
    const image = await importImage({ pool: db.pool, blobs }, { projectId: project.id, name: "a", role: "pool", data: await makeImagePng(32, 32), actorId: null });
    await createTask(db.pool, { projectId: project.id, imageId: image.id, kind: "annotate", assigneeId: d1!.id });
    expect((await pickDoctor(db.pool))!.id).toBe(d2!.id);
    expect((await pickDoctor(db.pool, [d2!.id]))!.id).toBe(d1!.id);
    expect(await pickDoctor(db.pool, [d1!.id, d2!.id])).toBeNull();
    // The same workflow id creates one task (a retried activity).
    const t1 = await createTask(db.pool, { projectId: project.id, imageId: image.id, kind: "annotate", workflowId: "wf-1" });
    const t2 = await createTask(db.pool, { projectId: project.id, imageId: image.id, kind: "annotate", workflowId: "wf-1" });
    expect(t2.id).toBe(t1.id);
    expect(t1.state).toBe("pending");
    await rm(blobs.root, { recursive: true, force: true });
  });
});
