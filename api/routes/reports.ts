import { z } from "zod";
import { savingsByDoctor, savingsByRound, savingsCsv, savingsReport, type ReportFilter, type SimulatedFilter } from "../../services/reports.js";
import { qualityCsv, qualityReport } from "../../services/qualityReport.js";
import { READERS } from "../present.js";
import { defineRoute } from "../route.js";
import { doctorSavingsSchema, idQuery, qualityReportSchema, reportQuerySchema, roundSavingsSchema, savingsSchema } from "../schemas.js";

function filterOf(query: unknown): ReportFilter {
  const q = query as { project_id?: number; campaign_id?: number; simulated?: SimulatedFilter; flagged?: SimulatedFilter };
  return { projectId: q.project_id, campaignId: q.campaign_id, simulated: q.simulated ?? "include", flagged: q.flagged ?? "include" };
}

const campaignQuery = z.object({ campaign_id: idQuery });

export const reportRoutes = [
  defineRoute({
    method: "get",
    path: "/reports/quality",
    operationId: "qualityReport",
    summary:
      "A campaign's quality figures: each consensus with the annotators' STAPLE sensitivity and specificity and their pairwise " +
      "Dice and clDice, review outcomes per doctor, honeypot scores per doctor",
    tag: "reports",
    access: READERS,
    query: campaignQuery,
    responses: { 200: { description: "the quality report", schema: qualityReportSchema } },
    async handler({ deps, query }) {
      return qualityReport(deps, (query as { campaign_id: number }).campaign_id);
    },
  }),
  defineRoute({
    method: "get",
    path: "/reports/quality.csv",
    operationId: "qualityCsv",
    summary: "The quality report in long form: section, round, image, doctor, metric, value",
    tag: "reports",
    access: READERS,
    query: campaignQuery,
    responses: { 200: { description: "CSV", contentType: "text/csv" } },
    async handler({ deps, query, res }) {
      const csv = qualityCsv(await qualityReport(deps, (query as { campaign_id: number }).campaign_id));
      res.setHeader("content-type", "text/csv; charset=utf-8");
      res.setHeader("content-disposition", 'attachment; filename="medloop-quality.csv"');
      res.status(200).send(csv);
      return undefined;
    },
  }),
  defineRoute({
    method: "get",
    path: "/reports/savings",
    operationId: "savingsReport",
    summary: "Minutes per image from scratch vs correcting, the saving and its 95% confidence interval (Welch)",
    tag: "reports",
    access: READERS,
    query: reportQuerySchema,
    responses: { 200: { description: "summary", schema: savingsSchema } },
    async handler({ deps, query }) {
      return savingsReport(deps.pool, filterOf(query));
    },
  }),
  defineRoute({
    method: "get",
    path: "/reports/savings.csv",
    operationId: "savingsCsv",
    summary: "One CSV line per manual or corrected mask with its timing, pixels changed, simulated flag and timing flags",
    tag: "reports",
    access: READERS,
    query: reportQuerySchema,
    responses: { 200: { description: "CSV", contentType: "text/csv" } },
    async handler({ deps, query, res }) {
      const csv = await savingsCsv(deps.pool, filterOf(query));
      res.setHeader("content-type", "text/csv; charset=utf-8");
      res.setHeader("content-disposition", 'attachment; filename="medloop-savings.csv"');
      res.status(200).send(csv);
      return undefined;
    },
  }),
  defineRoute({
    method: "get",
    path: "/reports/doctors",
    operationId: "savingsByDoctor",
    summary: "The savings summary per doctor",
    tag: "reports",
    access: READERS,
    query: reportQuerySchema,
    responses: { 200: { description: "per doctor", schema: z.array(doctorSavingsSchema) } },
    async handler({ deps, query }) {
      return savingsByDoctor(deps.pool, filterOf(query));
    },
  }),
  defineRoute({
    method: "get",
    path: "/reports/rounds",
    operationId: "savingsByRound",
    summary: "The savings summary per campaign round",
    tag: "reports",
    access: READERS,
    query: reportQuerySchema,
    responses: { 200: { description: "per round", schema: z.array(roundSavingsSchema) } },
    async handler({ deps, query }) {
      return savingsByRound(deps.pool, filterOf(query));
    },
  }),
];
