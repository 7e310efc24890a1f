// No Docker engine runs in CI, so docker-compose.yml is validated structurally: the
// services a deployment needs, how they find each other, the shared blob volume, the
// start-up order and the GPU reservation. Commands and Dockerfiles must name files
// that exist in the repository.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { repoRoot } from "../../services/config.js";

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  ports?: string[];
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver: string; count: unknown; capabilities: string[] }> } } };
}

const compose = parse(readFileSync(path.join(repoRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service ${name}`);
  return s;
};
const dependsOn = (name: string): Record<string, string> => {
  const deps = service(name).depends_on ?? {};
  return Array.isArray(deps) ? Object.fromEntries(deps.map((d) => [d, "service_started"])) : Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v.condition]));
};
const volumeNames = (name: string) => (service(name).volumes ?? []).map((v) => v.split(":")[0]);
const ourServices = ["migrate", "api", "worker", "gpu-worker"];

describe("docker-compose.yml", () => {
  it("has every part of a deployment", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["api", "gpu-worker", "migrate", "postgres", "temporal", "temporal-ui", "worker"].sort(),
    );
  });

  it("runs Temporal with PostgreSQL persistence and its UI against it", () => {
    const temporal = service("temporal");
    expect(temporal.image).toMatch(/^temporalio\/auto-setup:\d/);
    expect(temporal.environment).toMatchObject({ DB: "postgres12", POSTGRES_SEEDS: "postgres", DB_PORT: "5432" });
    expect(dependsOn("temporal")).toEqual({ postgres: "service_healthy" });
    expect(service("temporal-ui").image).toMatch(/^temporalio\/ui:\d/);
    expect(service("temporal-ui").environment?.TEMPORAL_ADDRESS).toBe("temporal:7233");
    expect(service("postgres").image).toMatch(/^postgres:\d+/);
  });

  it("builds our images from Dockerfiles in the repository and runs files that exist", () => {
    for (const name of ourServices) {
      const s = service(name);
      expect(s.build, name).toBeDefined();
      expect(existsSync(path.join(repoRoot, s.build!.context, s.build!.dockerfile)), `${name}: ${s.build!.dockerfile}`).toBe(true);
      expect(s.command, name).toBeDefined();
    }
    for (const name of ["migrate", "api", "worker"]) {
      const entry = service(name).command!.find((part) => part.endsWith(".ts"));
      expect(entry, name).toBeDefined();
      expect(existsSync(path.join(repoRoot, entry!)), `${name} runs ${entry}`).toBe(true);
    }
    expect(service("gpu-worker").command).toEqual(["medloop-ml", "worker", "--address", "temporal:7233", "--task-queue", "gpu"]);
    const pyproject = readFileSync(path.join(repoRoot, "ml", "pyproject.toml"), "utf8");
    expect(pyproject).toMatch(/^medloop-ml = "medloop_ml\.cli:main"/m);
  });

  it("points every medloop process at the same database, Temporal and blob store", () => {
    for (const name of ourServices) {
      const env = service(name).environment ?? {};
      expect(env.MEDLOOP_DATABASE_URL, name).toMatch(/^postgres:\/\/medloop:.+@postgres:5432\/medloop$/);
      expect(env.MEDLOOP_TEMPORAL_ADDRESS, name).toBe("temporal:7233");
      expect(env.MEDLOOP_BLOB_ROOT, name).toBe("/var/lib/medloop/blobs");
    }
    expect(service("api").environment?.MEDLOOP_PORT).toBe("8080");
  });

  it("shares one blob volume between the API and both workers", () => {
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(["blobs", "pgdata"]));
    for (const name of ["api", "worker", "gpu-worker"]) {
      expect(service(name).volumes, name).toContain("blobs:/var/lib/medloop");
    }
    expect(volumeNames("postgres")).toContain("pgdata");
  });

  it("starts in order: database, migrations and Temporal before the API and the workers", () => {
    expect(dependsOn("migrate")).toEqual({ postgres: "service_healthy" });
    for (const name of ["api", "worker"]) {
      expect(dependsOn(name)).toEqual({ migrate: "service_completed_successfully", temporal: "service_healthy" });
    }
    expect(dependsOn("gpu-worker")).toEqual({ temporal: "service_healthy" });
    expect(service("postgres")).toHaveProperty("healthcheck");
    expect(service("temporal")).toHaveProperty("healthcheck");
  });

  it("reserves the NVIDIA GPU for the gpu worker only", () => {
    const devices = service("gpu-worker").deploy?.resources?.reservations?.devices;
    expect(devices).toEqual([{ driver: "nvidia", count: "all", capabilities: ["gpu"] }]);
    for (const name of Object.keys(services).filter((n) => n !== "gpu-worker")) {
      expect(service(name).deploy, name).toBeUndefined();
    }
  });
});
