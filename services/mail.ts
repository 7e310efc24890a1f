// E-mail through nodemailer: SMTP when MEDLOOP_SMTP_URL is set, else an outbox folder
// ($MEDLOOP_DATA_DIR/outbox) holding one .eml (the message as sent) and one .json (its
// summary, for the API's outbox listing) per message, each written to a temporary name
// and renamed. Task links are signed with HMAC-SHA256 so that a link names its task and
// doctor and cannot be altered.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
  /** Same key, same message: a retried send is written (or sent) once per outbox. */
  idempotencyKey?: string;
  /** Extra fields kept in the outbox JSON (task id, template, link). */
  meta?: Record<string, unknown>;
}

export interface SentMail {
  messageId: string;
  /** The outbox .eml file when the outbox transport is used. */
  file: string | null;
  duplicate: boolean;
}

export interface OutboxEntry {
  id: string;
  messageId: string;
  to: string;
  from: string;
  subject: string;
  text: string;
  sentAt: string;
  meta: Record<string, unknown>;
}

export interface MailerOptions {
  smtpUrl: string | null;
  outboxDir: string;
  from?: string;
}

export const DEFAULT_FROM = "medloop <medloop@localhost>";

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

function outboxId(msg: MailMessage): string {
  if (msg.idempotencyKey) return createHmac("sha256", "outbox").update(msg.idempotencyKey).digest("hex").slice(0, 24);
  return `${Date.now()}-${randomBytes(6).toString("hex")}`;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

export class Mailer {
  private readonly transport: Transporter;
  private readonly outbox: boolean;
  constructor(private readonly options: MailerOptions) {
    this.outbox = !options.smtpUrl;
    this.transport = options.smtpUrl
      ? nodemailer.createTransport(options.smtpUrl)
      : nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  }

  get from(): string {
    return this.options.from ?? DEFAULT_FROM;
  }

  async send(msg: MailMessage): Promise<SentMail> {
    if (!msg.to.includes("@")) throw new Error(`invalid recipient "${msg.to}"`);
    const id = outboxId(msg);
    const mail = { from: this.from, to: msg.to, subject: msg.subject, text: msg.text, html: msg.html };
    if (!this.outbox) {
      const info = await this.transport.sendMail({ ...mail, messageId: `<${id}@medloop>` });
      return { messageId: String(info.messageId), file: null, duplicate: false };
    }
    await mkdir(this.options.outboxDir, { recursive: true });
    const eml = path.join(this.options.outboxDir, `${id}.eml`);
    const json = path.join(this.options.outboxDir, `${id}.json`);
    if (await exists(json)) return { messageId: `<${id}@medloop>`, file: eml, duplicate: true };
    const info = await this.transport.sendMail({ ...mail, messageId: `<${id}@medloop>` });
    await writeAtomic(eml, info.message as Buffer);
    const entry: OutboxEntry = {
      id,
      messageId: String(info.messageId),
      to: msg.to,
      from: this.from,
      subject: msg.subject,
      text: msg.text,
      sentAt: new Date().toISOString(),
      meta: msg.meta ?? {},
    };
    // The JSON is written last: a listed message always has its .eml.
    await writeAtomic(json, JSON.stringify(entry, null, 1));
    return { messageId: entry.messageId, file: eml, duplicate: false };
  }

  close(): void {
    this.transport.close();
  }
}

/** The outbox messages, newest first (for the API). */
export async function listOutbox(outboxDir: string): Promise<OutboxEntry[]> {
  const names = await readdir(outboxDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [] as string[];
    throw err;
  });
  const entries = await Promise.all(
    names
      .filter((n) => n.endsWith(".json"))
      .map(async (n) => JSON.parse(await readFile(path.join(outboxDir, n), "utf8")) as OutboxEntry),
  );
  return entries.sort((a, b) => (a.sentAt < b.sentAt ? 1 : a.sentAt > b.sentAt ? -1 : 0));
}

// ---------------------------------------------------------------- signed task links

export interface TaskLinkClaims {
  taskId: string;
  doctorId: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

function signature(secret: string, c: TaskLinkClaims): string {
  return createHmac("sha256", secret).update(`task:${c.taskId}:${c.doctorId}:${c.exp}`).digest("base64url");
}

/** `<baseUrl>/tasks/<taskId>?doctor=…&exp=…&sig=…` */
export function signTaskLink(baseUrl: string, secret: string, claims: TaskLinkClaims): string {
  const url = new URL(`tasks/${encodeURIComponent(claims.taskId)}`, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  url.searchParams.set("doctor", claims.doctorId);
  url.searchParams.set("exp", String(claims.exp));
  url.searchParams.set("sig", signature(secret, claims));
  return url.href;
}

/** The claims of a valid, unexpired link; null for a forged, altered or expired one. */
export function verifyTaskLink(link: string, secret: string, nowSeconds = Date.now() / 1000): TaskLinkClaims | null {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return null;
  }
  const match = /\/tasks\/([^/]+)$/.exec(url.pathname);
  const doctorId = url.searchParams.get("doctor");
  const exp = Number(url.searchParams.get("exp"));
  const sig = url.searchParams.get("sig") ?? "";
  if (!match || !doctorId || !Number.isInteger(exp)) return null;
  const claims = { taskId: decodeURIComponent(match[1] as string), doctorId, exp };
  const expected = Buffer.from(signature(secret, claims));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  return exp > nowSeconds ? claims : null;
}

/**
 * The link secret: MEDLOOP_LINK_SECRET, else a random one kept in `<dataDir>/link-secret`
 * so that links stay valid across restarts of the embedded stack.
 */
export async function linkSecret(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.MEDLOOP_LINK_SECRET) return env.MEDLOOP_LINK_SECRET;
  const file = path.join(dataDir, "link-secret");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, randomBytes(32).toString("hex"), { mode: 0o600 });
  // Another process may have created it meanwhile: link() fails if present, so the first one stays.
  await link(tmp, file).catch(() => undefined);
  await unlink(tmp);
  return (await readFile(file, "utf8")).trim();
}

/** Where links point: MEDLOOP_PUBLIC_URL, else the API on MEDLOOP_PORT (default 8080). */
export function publicBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.MEDLOOP_PUBLIC_URL || `http://127.0.0.1:${env.MEDLOOP_PORT || "8080"}`;
}
