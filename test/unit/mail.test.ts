// The mailer in both modes: the outbox folder (real .eml/.json files, private to the service)
// and SMTP to a real smtp-server on loopback; who may read an outbox message and what the
// others see of it; the signed task links and their settings.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { MockActivityEnvironment } from "@temporalio/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNotifyActivities, type TaskEmailInput } from "../../activities/notify.js";
import { loadConfig } from "../../services/config.js";
import {
  isOutboxRecipient,
  linkSecret,
  listOutbox,
  Mailer,
  normaliseAddress,
  publicBaseUrl,
  readTaskLink,
  redactedEml,
  redactOutboxEntry,
  signTaskLink,
  verifyTaskLink,
  WITHHELD,
  type OutboxEntry,
} from "../../services/mail.js";
import { memoryTaskLinkStore } from "../helpers/taskLinks.js";
import { startMailCatcher } from "../integration/smtp.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "medloop-mail-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("outbox", () => {
  it("writes one .eml and one .json per message, once per idempotency key, and lists them", async () => {
    const outboxDir = path.join(dir, "outbox");
    const mailer = new Mailer({ smtpUrl: null, outboxDir });
    const first = await mailer.send({ to: "ada@example.org", subject: "Task 1", text: "hello", idempotencyKey: "wf/1", meta: { taskId: "1" } });
    const repeat = await mailer.send({ to: "ada@example.org", subject: "Task 1", text: "hello", idempotencyKey: "wf/1" });
    await mailer.send({ to: "ben@example.org", subject: "Task 2", text: "hi", idempotencyKey: "wf/2" });
    expect(first.duplicate).toBe(false);
    expect(repeat).toMatchObject({ duplicate: true, file: first.file });
    const files = (await readdir(outboxDir)).sort();
    expect(files.filter((f) => f.endsWith(".eml"))).toHaveLength(2);
    expect(files.filter((f) => f.endsWith(".json"))).toHaveLength(2);
    expect(files.some((f) => f.includes(".tmp-"))).toBe(false);
    const eml = await readFile(first.file as string, "utf8");
    expect(eml).toMatch(/^To: ada@example.org$/m);
    expect(eml).toMatch(/^Subject: Task 1$/m);
    const listed = await listOutbox(outboxDir);
    expect(listed.map((m) => m.to).sort()).toEqual(["ada@example.org", "ben@example.org"]);
    expect(listed.find((m) => m.to === "ada@example.org")?.meta).toEqual({ taskId: "1" });
    await expect(mailer.send({ to: "nobody", subject: "x", text: "x" })).rejects.toThrow('invalid recipient "nobody"');
    expect(await listOutbox(path.join(dir, "missing"))).toEqual([]);
    mailer.close();
  });
});

describe("outbox privacy", () => {
  it("writes the folder 0700 and every file 0600, and narrows a folder made before", async () => {
    const outboxDir = path.join(dir, "private-outbox");
    await mkdir(outboxDir, { mode: 0o755 });
    await chmod(outboxDir, 0o755); // as an earlier version left it
    const mailer = new Mailer({ smtpUrl: null, outboxDir });
    await mailer.send({ to: "ada@example.org", subject: "s", text: "a link: https://medloop.example/tasks/1?sig=x", idempotencyKey: "mode-1" });
    mailer.close();
    expect((await stat(outboxDir)).mode & 0o777).toBe(0o700);
    const files = await readdir(outboxDir);
    expect(files).toHaveLength(2);
    for (const f of files) expect((await stat(path.join(outboxDir, f))).mode & 0o777, f).toBe(0o600);
  });

  it("matches a recipient by recorded user id, else by the whole normalised address, never by substring", () => {
    const doctor1 = { id: 3, email: "doctor1@medloop.local" };
    const r1 = { id: 9, email: "r1@medloop.local" };
    expect(isOutboxRecipient({ to: "doctor1@medloop.local" }, r1)).toBe(false); // contains "r1@medloop.local"
    expect(isOutboxRecipient({ to: "doctor1@medloop.local" }, doctor1)).toBe(true);
    expect(isOutboxRecipient({ to: " Dr. One <Doctor1@MEDLOOP.local> " }, doctor1)).toBe(true);
    // NFD ("e" + combining acute) and NFC ("é") are one address.
    expect(normaliseAddress("Jose\u0301@Example.org")).toBe("jos\u00e9@example.org");
    expect(isOutboxRecipient({ to: "jose\u0301@example.org" }, { id: 5, email: "jos\u00e9@example.org" })).toBe(true);
    // A recorded id decides, whatever the address says.
    expect(isOutboxRecipient({ to: "r1@medloop.local", toUserId: "3" }, doctor1)).toBe(true);
    expect(isOutboxRecipient({ to: "r1@medloop.local", toUserId: "3" }, r1)).toBe(false);
    expect(isOutboxRecipient({ to: "doctor1@medloop.local, r1@medloop.local" }, r1)).toBe(false);
  });

  it("redacts every link from the listing and from the .eml composed for others", async () => {
    const link = "https://medloop.example/tasks/7?doctor=3&exp=2000000000&nonce=abc&sig=SIGNATURE";
    const entry: OutboxEntry = {
      id: "abcdef0123456789",
      messageId: "<abcdef0123456789@medloop>",
      to: "doctor1@medloop.local",
      toUserId: "3",
      from: "medloop <medloop@localhost>",
      subject: "medloop: new correct task 7",
      text: `Hello,\n\nOpen it here: ${link}\n\nor http://old.example/tasks/7?sig=OLD\n`,
      sentAt: "2030-01-01T10:00:00.000Z",
      meta: { template: "assigned", taskId: "7", doctorId: "3", link, secretish: "x" },
    };
    const r = redactOutboxEntry(entry);
    expect(r.text).not.toContain("SIGNATURE");
    expect(r.text).not.toContain("OLD");
    expect(r.text).toContain(WITHHELD);
    expect(r.meta).toEqual({ template: "assigned", taskId: "7", doctorId: "3", redacted: true });
    expect(entry.meta.link).toBe(link); // the stored entry is untouched
    const eml = (await redactedEml(entry)).toString("utf8").replace(/=\r?\n/g, "");
    expect(eml).toMatch(/^Message-ID: <abcdef0123456789@medloop>$/m);
    expect(eml).toMatch(/^Subject: medloop: new correct task 7$/m);
    expect(eml).toMatch(/^To: doctor1@medloop.local$/m);
    expect(eml).not.toContain("SIGNATURE");
    expect(eml).not.toContain("nonce");
  });
});

describe("SMTP", () => {
  it("delivers the task e-mail with its signed link to a real SMTP server", async () => {
    const catcher = await startMailCatcher();
    const mailer = new Mailer({ smtpUrl: catcher.url, outboxDir: path.join(dir, "unused") });
    try {
      const links = memoryTaskLinkStore();
      const { sendTaskEmail } = createNotifyActivities({ mailer, linkSecret: "s3cret", baseUrl: "http://medloop.test:8080", links });
      const input: TaskEmailInput = {
        template: "assigned",
        taskId: "17",
        to: { userId: "4", email: "ada@example.org", name: "Ada" },
        taskKind: "correct",
        imageId: "9",
        round: 2,
        dueAt: "2030-01-01T00:00:00.000Z",
      };
      const sent: { link: string | null } = await new MockActivityEnvironment().run(sendTaskEmail, input);
      expect(sent.link).not.toBeNull();
      expect(links.links).toHaveLength(1); // the link's nonce is recorded (its hash)
      expect(catcher.mails).toHaveLength(1);
      const mail = catcher.mails[0]!;
      expect(mail.to).toEqual(["ada@example.org"]);
      expect(mail.subject).toBe("medloop: new correct task 17");
      // Quoted-printable may wrap long lines: unwrap before reading the text.
      const body = mail.raw.replace(/=\r?\n/g, "").replace(/=3D/g, "=");
      expect(body).toContain("correct the network's vessel mask of image 9 (round 2)");
      expect(body).toContain(sent.link!);
      expect(verifyTaskLink(sent.link!, "s3cret")).toMatchObject({ taskId: "17", doctorId: "4" });
      expect(await readdir(dir)).not.toContain("unused"); // nothing went to the outbox
    } finally {
      mailer.close();
      await catcher.close();
    }
  });
});

describe("signed task links", () => {
  const claims = { taskId: "5", doctorId: "12", exp: 2_000_000_000, nonce: "n0nce-A_b" };
  const link = signTaskLink("https://medloop.example/app", "secret-a", claims);

  it("verify only unaltered, unexpired links signed with the same secret", () => {
    expect(link.startsWith("https://medloop.example/app/tasks/5?")).toBe(true);
    expect(verifyTaskLink(link, "secret-a", 1_900_000_000)).toEqual(claims);
    expect(verifyTaskLink(link, "secret-b", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link.replace("tasks/5", "tasks/6"), "secret-a", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link.replace("exp=2000000000", "exp=2000000001"), "secret-a", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link.replace("nonce=n0nce-A_b", "nonce=n0nce-A_c"), "secret-a", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link, "secret-a", 2_000_000_001)).toBeNull(); // expired
    expect(verifyTaskLink("not a url", "secret-a")).toBeNull();
    // Why not: an expired link still names its claims (for the audit), an altered one does not.
    expect(readTaskLink(link, "secret-a", 2_000_000_001)).toEqual({ ok: false, problem: "expired", claims });
    expect(readTaskLink(link, "secret-b", 1_900_000_000)).toEqual({ ok: false, problem: "invalid" });
  });

  it("refuse links of the earlier format, which had no nonce and were reusable for 30 days", async () => {
    const { createHmac } = await import("node:crypto");
    const sig = createHmac("sha256", "secret-a").update("task:5:12:2000000000").digest("base64url");
    expect(verifyTaskLink(`https://medloop.example/tasks/5?doctor=12&exp=2000000000&sig=${sig}`, "secret-a", 1_900_000_000)).toBeNull();
  });

  it("last MEDLOOP_TASK_LINK_DAYS days (default 7, at most 30) and point at MEDLOOP_PUBLIC_URL", () => {
    expect(loadConfig({}).taskLinkTtlSeconds).toBe(7 * 86_400);
    expect(loadConfig({ MEDLOOP_TASK_LINK_DAYS: "2" }).taskLinkTtlSeconds).toBe(2 * 86_400);
    expect(() => loadConfig({ MEDLOOP_TASK_LINK_DAYS: "0" })).toThrow(/MEDLOOP_TASK_LINK_DAYS must be a positive number/);
    expect(() => loadConfig({ MEDLOOP_TASK_LINK_DAYS: "31" })).toThrow(/MEDLOOP_TASK_LINK_DAYS must be at most 30/);
    const configured = loadConfig({ MEDLOOP_PUBLIC_URL: "https://medloop.example.org/ui", MEDLOOP_PORT: "9999" });
    expect(configured).toMatchObject({ publicUrl: "https://medloop.example.org/ui/", publicUrlConfigured: true });
    expect(publicBaseUrl({ MEDLOOP_PUBLIC_URL: "https://medloop.example.org/", MEDLOOP_PORT: "9999" })).toBe("https://medloop.example.org/");
    expect(loadConfig({ MEDLOOP_PORT: "8123" })).toMatchObject({ publicUrl: "http://localhost:8123/", publicUrlConfigured: false });
    for (const bad of ["medloop.example.org", "ftp://medloop.example.org/", "https://u:p@medloop.example.org/", "https://medloop.example.org/?x=1"]) {
      expect(() => loadConfig({ MEDLOOP_PUBLIC_URL: bad }), bad).toThrow(/MEDLOOP_PUBLIC_URL/);
    }
  });

  it("keeps a generated secret in the data folder unless MEDLOOP_LINK_SECRET is set", async () => {
    const dataDir = path.join(dir, "data");
    const first = await linkSecret(dataDir, {});
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await linkSecret(dataDir, {})).toBe(first);
    expect(await linkSecret(dataDir, { MEDLOOP_LINK_SECRET: "from-env" })).toBe("from-env");
  });
});
