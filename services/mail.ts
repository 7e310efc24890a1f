// E-mail through nodemailer: SMTP when MEDLOOP_SMTP_URL is set, else an outbox folder
// ($MEDLOOP_DATA_DIR/outbox) holding one .eml (the message as sent) and one .json (its
// summary, for the API's outbox listing) per message, each written to a temporary name
// and renamed. The outbox holds working task links, i.e. credentials: the folder is 0700 and
// its files 0600, and the API shows a message whole only to its recipient (isOutboxRecipient;
// everyone else allowed to list it gets redactOutboxEntry / redactedEml).
// Task links are signed with HMAC-SHA256 so that a link names its task, doctor, expiry and
// nonce and cannot be altered; the nonce makes it single-use (services/taskLinks.ts).
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, link, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";
import { parsePublicUrl } from "./config.js";

export interface MailMessage {
  to: string;
  /**
   * The recipient's user id, when the mail is for a user: recorded with the message so that the
   * outbox shows it to exactly that user, whatever their address becomes later.
   */
  toUserId?: string | number;
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
  /** The recipient's user id (absent in messages written before it was recorded). */
  toUserId?: string | null;
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

/** Outbox files hold working links: readable by the service's user only (umask cannot widen these). */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  await writeFile(tmp, data, { mode: FILE_MODE });
  await rename(tmp, file);
}

/**
 * Creates the outbox folder 0700, and narrows one made before (0755 by the umask): the files in
 * it were written 0644 then, and a closed folder keeps other users from reaching them.
 */
async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  await chmod(dir, DIR_MODE);
}

function outboxId(msg: MailMessage): string {
  if (msg.idempotencyKey) return createHmac("sha256", "outbox").update(msg.idempotencyKey).digest("hex").slice(0, 24);
  // Hex only, like the keyed ids, so GET /outbox/:messageId can name every message.
  return `${Date.now().toString(16).padStart(12, "0")}${randomBytes(6).toString("hex")}`;
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
    await ensurePrivateDir(this.options.outboxDir);
    const eml = path.join(this.options.outboxDir, `${id}.eml`);
    const json = path.join(this.options.outboxDir, `${id}.json`);
    if (await exists(json)) return { messageId: `<${id}@medloop>`, file: eml, duplicate: true };
    const info = await this.transport.sendMail({ ...mail, messageId: `<${id}@medloop>` });
    await writeAtomic(eml, info.message as Buffer);
    const entry: OutboxEntry = {
      id,
      messageId: String(info.messageId),
      to: msg.to,
      toUserId: msg.toUserId === undefined ? null : String(msg.toUserId),
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

// ---------------------------------------------------------------- who may read a message

/**
 * An address as compared: the bare address of `Name <addr>`, trimmed, in Unicode NFC (one form
 * for "é" typed as one or as two code points) and lower case, as users' e-mails are stored.
 */
export function normaliseAddress(address: string): string {
  const bare = /<([^<>]*)>\s*$/.exec(address)?.[1] ?? address;
  return bare.trim().normalize("NFC").toLowerCase();
}

/**
 * Whether `user` is the message's recipient: by the user id recorded with the message, else (a
 * message written before ids were recorded, or to no user) by the whole normalised address.
 * Never by substring: "r1@medloop.local" is not "doctor1@medloop.local" (issue 10: a substring
 * match let a new doctor read another doctor's links and log in as them).
 */
export function isOutboxRecipient(entry: Pick<OutboxEntry, "to" | "toUserId">, user: { id: number | string; email: string }): boolean {
  if (entry.toUserId !== undefined && entry.toUserId !== null) return entry.toUserId === String(user.id);
  return normaliseAddress(entry.to) === normaliseAddress(user.email);
}

/** What stands in for a link in a message shown to someone other than its recipient. */
export const WITHHELD = "[link withheld: only the recipient can open it]";
/** The meta fields that say what a message was about; anything else (the link) is withheld. */
const PUBLIC_META = ["template", "taskId", "doctorId"] as const;

/**
 * A message as lab leads and admins see it: that it was sent (recipient, subject, time,
 * template, task) but no usable link. Every URL in the text is replaced, not only the recorded
 * link: a message from an older version may carry one that no field names.
 */
export function redactOutboxEntry(entry: OutboxEntry): OutboxEntry {
  let text = entry.text;
  const recorded = entry.meta.link;
  if (typeof recorded === "string" && recorded) text = text.split(recorded).join(WITHHELD);
  text = text.replace(/\bhttps?:\/\/[^\s<>"']+/gi, WITHHELD);
  const meta: Record<string, unknown> = { redacted: true };
  for (const key of PUBLIC_META) if (entry.meta[key] !== undefined) meta[key] = entry.meta[key];
  return { ...entry, text, meta };
}

/**
 * The .eml of a message with its links withheld: composed again from the summary (same
 * Message-ID, Date, From, To, Subject; the redacted text) rather than edited, because the
 * stored .eml is quoted-printable and may break a link across lines.
 */
export async function redactedEml(entry: OutboxEntry): Promise<Buffer> {
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
  try {
    const info = await composer.sendMail({
      from: entry.from,
      to: entry.to,
      subject: entry.subject,
      text: redactOutboxEntry(entry).text,
      messageId: entry.messageId,
      date: new Date(entry.sentAt),
      headers: { "X-Medloop-Redacted": "links withheld; only the recipient sees the message whole" },
    });
    return info.message as Buffer;
  } finally {
    composer.close();
  }
}

// ---------------------------------------------------------------- signed task links

export interface TaskLinkClaims {
  taskId: string;
  doctorId: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  /** Random, single-use: its SHA-256 is recorded when the link is issued and burnt at exchange. */
  nonce: string;
}

/** Why a link is not even looked up: not one this server signed (or altered), or past its expiry. */
export type TaskLinkProblem = "invalid" | "expired";

function signature(secret: string, c: TaskLinkClaims): string {
  return createHmac("sha256", secret).update(`task:${c.taskId}:${c.doctorId}:${c.exp}:${c.nonce}`).digest("base64url");
}

/** `<baseUrl>/tasks/<taskId>?doctor=…&exp=…&nonce=…&sig=…` */
export function signTaskLink(baseUrl: string, secret: string, claims: TaskLinkClaims): string {
  const url = new URL(`tasks/${encodeURIComponent(claims.taskId)}`, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
  url.searchParams.set("doctor", claims.doctorId);
  url.searchParams.set("exp", String(claims.exp));
  url.searchParams.set("nonce", claims.nonce);
  url.searchParams.set("sig", signature(secret, claims));
  return url.href;
}

/**
 * Reads a link: its claims when the signature holds and it has not expired, else why not. An
 * expired link still names its claims (for the audit of the refusal); an invalid one does not.
 * Links of the earlier format (no nonce) are invalid: they were reusable for 30 days.
 */
export function readTaskLink(
  link: string,
  secret: string,
  nowSeconds = Date.now() / 1000,
): { ok: true; claims: TaskLinkClaims } | { ok: false; problem: TaskLinkProblem; claims?: TaskLinkClaims } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return { ok: false, problem: "invalid" };
  }
  const match = /\/tasks\/(\d{1,10})$/.exec(url.pathname);
  const doctorId = url.searchParams.get("doctor") ?? "";
  const expRaw = url.searchParams.get("exp") ?? "";
  const nonce = url.searchParams.get("nonce") ?? "";
  const sig = url.searchParams.get("sig") ?? "";
  if (!match || !/^\d{1,10}$/.test(doctorId) || !/^\d{1,12}$/.test(expRaw) || !/^[A-Za-z0-9_-]{1,128}$/.test(nonce)) {
    return { ok: false, problem: "invalid" };
  }
  const claims: TaskLinkClaims = { taskId: match[1]!, doctorId, exp: Number(expRaw), nonce };
  const expected = Buffer.from(signature(secret, claims));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, problem: "invalid" };
  return claims.exp > nowSeconds ? { ok: true, claims } : { ok: false, problem: "expired", claims };
}

/** The claims of a valid, unexpired link; null for a forged, altered or expired one. */
export function verifyTaskLink(link: string, secret: string, nowSeconds = Date.now() / 1000): TaskLinkClaims | null {
  const read = readTaskLink(link, secret, nowSeconds);
  return read.ok ? read.claims : null;
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

/**
 * Where links point: MEDLOOP_PUBLIC_URL (services/config.ts parsePublicUrl), never the address
 * the API listens on; unset, the single-machine default http://localhost:<MEDLOOP_PORT or 8080>/.
 */
export function publicBaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  return parsePublicUrl(env.MEDLOOP_PUBLIC_URL, env.MEDLOOP_PORT).url;
}
