// The API's JSON shapes, taken from the types generated from its OpenAPI document
// (schema.d.ts, `npm run web:api`), so a change in the API shows up here as a type error.

import type { components, paths } from "./schema.js";

type S = components["schemas"];

export type { paths };
export type User = S["User"];
export type Role = User["role"];
export type LoginResponse = S["LoginResult"];
export type TaskLinkLogin = S["TaskLinkLogin"];
export type Task = S["Task"];
export type TaskKind = Task["kind"];
export type TaskState = Task["state"];
export type AnnotationVersion = S["AnnotationVersion"];
export type TaskDetail = S["TaskDetail"];
export type SubmissionInput = S["SubmissionInput"];
export type SubmissionResult = S["SubmissionResult"];
export type Project = S["Project"];
export type ImageRow = S["Image"];
export type CampaignConfig = S["CampaignConfig"];
export type PulledTask = S["PulledTask"];
export type PullableCampaign = S["PullableCampaign"];
export type AugmentStep = NonNullable<CampaignConfig["augmentation"]>["steps"][number];
export type NewCampaign = S["NewCampaign"];
export type Campaign = S["Campaign"];
export type CampaignStatus = S["CampaignStatus"];
export type Round = S["Round"];
export type Savings = S["Savings"];
export type DoctorSavings = S["DoctorSavings"];
export type RoundSavings = S["RoundSavings"];
export type LivePoint = S["LivePoint"];
export type AuditRow = S["AuditEntry"];
export type AuditChainReport = S["AuditChainReport"];
export type OutboxMessage = S["OutboxMessage"];
export type Region = S["Region"];
export type Review = S["Review"];
export type ReviewState = Review["state"];
export type ReviewDecision = S["ReviewDecision"];
export type TaskReview = NonNullable<TaskDetail["review"]>;
export type QualityReport = S["QualityReport"];
