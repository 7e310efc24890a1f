// The demo accounts (and project) that `medloop start` creates on a fresh data folder.
// Idempotent: a restart finds them and creates nothing new.
import type { Pool } from "../db/pool.js";
import { seedDemoUsers } from "../services/users.js";

export interface DemoUser {
  email: string;
  name: string;
  role: string;
  password: string;
}

export async function seedDemo(pool: Pool): Promise<DemoUser[]> {
  const users = await seedDemoUsers(pool);
  return users.map(({ email, name, role, password }) => ({ email, name, role, password }));
}
