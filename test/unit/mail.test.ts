// The mailer in both modes: the outbox folder (real .eml/.json files) and SMTP to a real
// smtp-server on loopback; and the signed task links.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { MockActivityEnvironment } from "@temporalio/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNotifyActivities, type TaskEmailInput } from "../../activities/notify.js";
import { linkSecret, listOutbox, Mailer, signTaskLink, verifyTaskLink } from "../../services/mail.js";
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

describe("SMTP", () => {
  it("delivers the task e-mail with its signed link to a real SMTP server", async () => {
    const catcher = await startMailCatcher();
    const mailer = new Mailer({ smtpUrl: catcher.url, outboxDir: path.join(dir, "unused") });
    try {
      const { sendTaskEmail } = createNotifyActivities({ mailer, linkSecret: "s3cret", baseUrl: "http://medloop.test:8080" });
      const input: TaskEmailInput = {
        template: "assigned",
        taskId: "17",
        to: { userId: "4", email: "ada@example.org", name: "Ada" },
        taskKind: "correct",
        imageId: "9",
        round: 2,
        dueAt: "2030-01-01T00:00:00.000Z",
      };
      const sent: { link: string } = await new MockActivityEnvironment().run(sendTaskEmail, input);
      expect(catcher.mails).toHaveLength(1);
      const mail = catcher.mails[0]!;
      expect(mail.to).toEqual(["ada@example.org"]);
      expect(mail.subject).toBe("medloop: new correct task 17");
      // Quoted-printable may wrap long lines: unwrap before reading the text.
      const body = mail.raw.replace(/=\r?\n/g, "").replace(/=3D/g, "=");
      expect(body).toContain("correct the network's vessel mask of image 9 (round 2)");
      expect(body).toContain(sent.link);
      expect(verifyTaskLink(sent.link, "s3cret")).toMatchObject({ taskId: "17", doctorId: "4" });
      expect(await readdir(dir)).not.toContain("unused"); // nothing went to the outbox
    } finally {
      mailer.close();
      await catcher.close();
    }
  });
});

describe("signed task links", () => {
  const claims = { taskId: "5", doctorId: "12", exp: 2_000_000_000 };
  const link = signTaskLink("https://medloop.example/app", "secret-a", claims);

  it("verify only unaltered, unexpired links signed with the same secret", () => {
    expect(link.startsWith("https://medloop.example/app/tasks/5?")).toBe(true);
    expect(verifyTaskLink(link, "secret-a", 1_900_000_000)).toEqual(claims);
    expect(verifyTaskLink(link, "secret-b", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link.replace("tasks/5", "tasks/6"), "secret-a", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link.replace("exp=2000000000", "exp=2000000001"), "secret-a", 1_900_000_000)).toBeNull();
    expect(verifyTaskLink(link, "secret-a", 2_000_000_001)).toBeNull(); // expired
    expect(verifyTaskLink("not a url", "secret-a")).toBeNull();
  });

  it("keeps a generated secret in the data folder unless MEDLOOP_LINK_SECRET is set", async () => {
    const dataDir = path.join(dir, "data");
    const first = await linkSecret(dataDir, {});
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await linkSecret(dataDir, {})).toBe(first);
    expect(await linkSecret(dataDir, { MEDLOOP_LINK_SECRET: "from-env" })).toBe("from-env");
  });
});
