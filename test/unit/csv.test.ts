// CSV cells of the auditor's export (services/reports.ts): RFC 4180 quoting, and text that a
// spreadsheet would run as a formula (a doctor's or an image's name) prefixed with ' (OWASP, "CSV
// Injection"), while numbers and dates are written as they are.
import { describe, expect, it } from "vitest";
import { csvCell } from "../../services/reports.js";

describe("csvCell", () => {
  it("quotes commas, quotes and line breaks", () => {
    expect(csvCell('a,"b"')).toBe('"a,""b"""');
    expect(csvCell("two\nlines")).toBe('"two\nlines"');
  });

  it("defuses text a spreadsheet would run as a formula", () => {
    expect(["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx"].map(csvCell)).toEqual([
      '"\'=HYPERLINK(""x"")"',
      "'+1",
      "'-2+3",
      "'@SUM(A1)",
      "'\tx",
    ]);
  });

  it("writes numbers, dates, flags and empty values as they are", () => {
    expect([-5, 0.25, new Date("2026-11-30T00:00:00Z"), ["active_ms_clamped", "ended_at_in_future"], null].map(csvCell)).toEqual([
      "-5",
      "0.25",
      "2026-11-30T00:00:00.000Z",
      "active_ms_clamped;ended_at_in_future",
      "",
    ]);
  });
});
