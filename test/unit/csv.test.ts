// CSV cells of the auditor's export (services/reports.ts): RFC 4180 quoting, and text that a
// spreadsheet would run as a formula (a doctor's or an image's name) prefixed with ' (OWASP, "CSV
// Injection"), while numbers and dates are written as they are.
import { describe, expect, it } from "vitest";
import { qualityCsv, type QualityReport } from "../../services/qualityReport.js";
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

describe("qualityCsv", () => {
  it("writes one figure per line, names quoted and defused like the savings export", () => {
    const report: QualityReport = {
      campaign_id: 1,
      consensus: [
        {
          consensus_id: 9,
          image_id: 3,
          image_name: "Image_01L",
          round: 0,
          method: "staple",
          annotators: [
            { version_id: 5, annotator_id: 11, annotator_name: "Dr. A, One", sensitivity: 0.9, specificity: 0.99 },
            { version_id: 6, annotator_id: 12, annotator_name: "=B", sensitivity: 0.8, specificity: 0.98 },
          ],
          pairs: [{ a_version_id: 5, b_version_id: 6, dice: 0.78, cldice: null }],
        },
      ],
      agreement: { dice_mean: 0.78, cldice_mean: null, pairs: 1 },
      reviews: [{ doctor_id: 11, doctor_name: "Dr. A, One", accepted: 2, returned: 1, pending: 0, review_active_ms: 60000 }],
      honeypots: { scores: [], by_doctor: [] },
    };
    expect(qualityCsv(report).split("\r\n")).toEqual([
      "section,round,image,doctor,metric,value",
      'annotator,0,Image_01L,"Dr. A, One",staple_sensitivity,0.9',
      'annotator,0,Image_01L,"Dr. A, One",staple_specificity,0.99',
      "annotator,0,Image_01L,'=B,staple_sensitivity,0.8",
      "annotator,0,Image_01L,'=B,staple_specificity,0.98",
      'pair,0,Image_01L,"Dr. A, One / =B",dice,0.78',
      'pair,0,Image_01L,"Dr. A, One / =B",cldice,',
      'review,,,"Dr. A, One",accepted,2',
      'review,,,"Dr. A, One",returned,1',
      'review,,,"Dr. A, One",pending,0',
      'review,,,"Dr. A, One",review_active_ms,60000',
      "",
    ]);
  });
});
