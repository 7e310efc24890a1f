// Typed domain errors. Services throw these; the API maps each code to an HTTP status and
// answers {error: {code, message}}; the CLI prints the message.

export type ErrorCode =
  | "bad_request"
  | "validation_failed"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "stale_version"
  | "unprocessable"
  | "payload_too_large"
  | "unsupported_media_type"
  | "too_many_requests"
  | "workflow_unavailable"
  | "internal";

const statusOf: Record<ErrorCode, number> = {
  bad_request: 400,
  validation_failed: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  stale_version: 409,
  unprocessable: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  too_many_requests: 429,
  workflow_unavailable: 503,
  internal: 500,
};

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = "AppError";
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return statusOf[this.code];
  }
}

export const badRequest = (message: string, details?: unknown) => new AppError("bad_request", message, details);
export const notFound = (what: string, id: string | number) => new AppError("not_found", `${what} ${id} not found`);
export const forbidden = (message: string) => new AppError("forbidden", message);
export const conflict = (message: string, details?: unknown) => new AppError("conflict", message, details);

export function httpStatusOf(code: ErrorCode): number {
  return statusOf[code];
}

/** PostgreSQL unique_violation (23505) → the constraint name, otherwise null. */
export function uniqueViolation(err: unknown): string | null {
  const e = err as { code?: string; constraint?: string };
  return e && e.code === "23505" ? (e.constraint ?? "unique") : null;
}
