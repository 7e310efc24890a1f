// The password policy applied wherever a password is set (services/users.ts: create, admin reset,
// change). Minimal on purpose, after NIST SP 800-63B: a length floor and a deny-list of passwords
// that attackers try first, no composition rules (they push people to "Password1!"). The deny-list
// is the common-password dictionary of zxcvbn-ts (@zxcvbn-ts/language-common, MIT; ~49 000
// passwords from leaked-password corpora), kept up to date through npm rather than copied here.
import { dictionary } from "@zxcvbn-ts/language-common";
import { AppError } from "./errors.js";

/** Length limits in Unicode code points (what a person types), not UTF-16 units or bytes. */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 200;

export type PasswordRule = "blank" | "control_characters" | "min_length" | "max_length" | "repeated_character" | "common_password";

export interface PasswordProblem {
  rule: PasswordRule;
  message: string;
}

// Built on first use: the dictionary is decompressed by the package at import time already, the
// Set makes each check O(1). Entries are lower case, so the check is case-insensitive
// ("Password1234" is as guessable as "password1234").
let denyList: Set<string> | null = null;
function commonPasswords(): Set<string> {
  denyList ??= new Set(dictionary["passwords-common"]);
  return denyList;
}

/** The first rule `password` breaks, or null when it is acceptable. */
export function passwordProblem(password: string): PasswordProblem | null {
  // Tabs, newlines, NUL and the like cannot be typed into a login form reliably and NUL cuts
  // strings in some clients: a password holding them is a mistake or an attack on a parser.
  if (/\p{Cc}/u.test(password)) {
    return { rule: "control_characters", message: "must not contain control characters (tab, newline, NUL, …)" };
  }
  if (password.trim() === "") return { rule: "blank", message: "must not be empty or only spaces" };
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) {
    return { rule: "min_length", message: `must have at least ${PASSWORD_MIN_LENGTH} characters` };
  }
  if (length > PASSWORD_MAX_LENGTH) {
    return { rule: "max_length", message: `must have at most ${PASSWORD_MAX_LENGTH} characters` };
  }
  if (/^(.)\1*$/su.test(password)) return { rule: "repeated_character", message: "must not be one character repeated" };
  if (commonPasswords().has(password.toLowerCase())) {
    return { rule: "common_password", message: "is one of the most common passwords; choose another" };
  }
  return null;
}

/** Throws a 400 naming the field and the broken rule (`details.rule`); never echoes the password. */
export function assertPasswordAllowed(password: string, field = "password"): void {
  const problem = passwordProblem(password);
  if (problem) {
    throw new AppError("validation_failed", `${field}: ${problem.message} (rule ${problem.rule})`, { field, rule: problem.rule });
  }
}
