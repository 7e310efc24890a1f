// Who is logged in. The token lives in localStorage (api/client.ts); the user is
// fetched from /auth/me once per page load.

import { api, getToken, setToken } from "./api/client.js";
import type { LoginResponse, Role, User } from "./api/types.js";

let current: User | null = null;

export function currentUser(): User | null {
  return current;
}

export async function loadSession(): Promise<User | null> {
  if (!getToken()) return null;
  try {
    const me = await api.get<User | { user: User }>("/auth/me");
    current = "user" in me ? me.user : me;
  } catch {
    setToken(null);
    current = null;
  }
  return current;
}

export async function login(email: string, password: string): Promise<User> {
  const res = await api.post<LoginResponse>("/auth/login", { email, password });
  setToken(res.token);
  current = res.user;
  return res.user;
}

export async function logout(): Promise<void> {
  try {
    await api.post("/auth/logout");
  } catch {
    /* the token is dropped locally either way */
  }
  setToken(null);
  current = null;
}

export function hasRole(...roles: Role[]): boolean {
  return current !== null && (current.role === "admin" || roles.includes(current.role));
}

/** The page a user lands on after logging in. */
export function homeFor(user: User): string {
  switch (user.role) {
    case "doctor":
      return "#/inbox";
    case "auditor":
      return "#/reports";
    case "reviewer":
      return "#/reviews";
    default:
      return "#/projects";
  }
}
