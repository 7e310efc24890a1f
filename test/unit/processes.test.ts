// The stack's process supervisor with real child processes: prefixed output, a child
// that dies on its own is reported, and stopAll stops the children in reverse order,
// killing one that ignores its stop signal.
import { describe, expect, it } from "vitest";
import { Supervisor } from "../../stack/processes.js";

/** A node child that prints its name, and on SIGTERM prints "bye <name>" and exits. */
function child(name: string, opts: { ignoreTerm?: boolean; exitAfterMs?: number } = {}) {
  const script = `
    console.log("hello ${name}");
    process.on("SIGTERM", () => { ${opts.ignoreTerm ? "" : `console.log("bye ${name}"); process.exit(0);`} });
    ${opts.exitAfterMs ? `setTimeout(() => process.exit(3), ${opts.exitAfterMs});` : ""}
    setInterval(() => {}, 1000);`;
  return { name, command: process.execPath, args: ["-e", script] };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
};

describe("Supervisor", () => {
  it("prefixes each child's lines and stops the children in reverse start order", async () => {
    const lines: string[] = [];
    const sup = new Supervisor((l) => lines.push(l));
    for (const name of ["first", "second", "third"]) sup.start(child(name));
    await until(() => lines.filter((l) => l.includes("hello")).length === 3);
    expect(lines).toEqual(expect.arrayContaining(["[first] hello first", "[second] hello second", "[third] hello third"]));
    await sup.stopAll();
    expect(lines.filter((l) => l.includes("bye"))).toEqual(["[third] bye third", "[second] bye second", "[first] bye first"]);
    expect(sup.runningNames()).toEqual([]);
  });

  it("reports a child that exits without being asked to", async () => {
    const lines: string[] = [];
    const sup = new Supervisor((l) => lines.push(l));
    const crashed = new Promise<{ name: string; code: number | null }>((resolve) => sup.onCrash(resolve));
    sup.start(child("steady"));
    sup.start(child("fragile", { exitAfterMs: 200 }));
    const exit = await crashed;
    expect(exit).toMatchObject({ name: "fragile", code: 3 });
    expect(lines).toContain("[stack] fragile exited unexpectedly (code 3)");
    expect(sup.runningNames()).toEqual(["steady"]);
    await sup.stopAll();
  });

  it("kills a child that ignores its stop signal after its grace period", async () => {
    const lines: string[] = [];
    const sup = new Supervisor((l) => lines.push(l));
    sup.start({ ...child("stubborn", { ignoreTerm: true }), stopTimeoutMs: 300 });
    await until(() => lines.includes("[stubborn] hello stubborn"));
    await sup.stopAll();
    expect(lines).toContain("[stack] stubborn did not stop within 300 ms; killing it");
    expect(sup.runningNames()).toEqual([]);
  });

  it("reports a command that cannot start", async () => {
    const lines: string[] = [];
    const sup = new Supervisor((l) => lines.push(l));
    sup.start({ name: "missing", command: "/nonexistent/binary", args: [] });
    expect(await sup.exited("missing")).toMatchObject({ code: 127 });
    expect(lines.some((l) => l.startsWith("[missing] failed to start"))).toBe(true);
  });
});
