// The campaign configuration accepted by startCampaignWorkflow: defaults filled in, a bad
// field named in one line.
import { describe, expect, it } from "vitest";
import { AppError } from "../../services/errors.js";
import { resolveCampaignConfig } from "../../services/temporal.js";
import { DEFAULT_CAMPAIGN_CONFIG } from "../../workflows/types.js";

describe("resolveCampaignConfig", () => {
  it("refuses a training budget of both epochs and minutes, naming the field", () => {
    expect(() => resolveCampaignConfig({ train: { epochs: 2, minutes: 1 } })).toThrowError(/train: give either epochs or minutes/);
    expect(resolveCampaignConfig({ train: { minutes: 1 } }).train).toEqual({ minutes: 1 });
  });

  it("fills in the defaults and keeps what was given", () => {
    expect(resolveCampaignConfig(undefined)).toEqual(DEFAULT_CAMPAIGN_CONFIG);
    const config = resolveCampaignConfig({ k: 4, strategy: "random", train: { minutes: 2 } });
    expect(config).toMatchObject({ k: 4, strategy: "random", train: { minutes: 2 }, maxRounds: DEFAULT_CAMPAIGN_CONFIG.maxRounds });
    // A partial taskTiming keeps the other defaults.
    expect(resolveCampaignConfig({ taskTiming: { remindAfterMs: 60_000 } }).taskTiming).toEqual({
      ...DEFAULT_CAMPAIGN_CONFIG.taskTiming,
      remindAfterMs: 60_000,
    });
  });

  it.each([
    [{ k: 0 }, /^campaign config: k: /],
    [{ strategy: "greedy" }, /^campaign config: strategy: /],
    [{ augmentation: { seed: 1, steps: [{ op: "random_crop", size: [448], count: 2 }] } }, /^campaign config: augmentation\.steps\.0/],
    [{ taskTiming: { remindAfterMs: 10, escalateAfterMs: 5 } }, /taskTiming: escalateAfterMs must not be shorter than remindAfterMs/],
    [{ colour: "red" }, /^campaign config: config: .*colour/i],
  ])("refuses %j", (raw, message) => {
    let error: unknown;
    try {
      resolveCampaignConfig(raw);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("validation_failed");
    expect((error as AppError).message).toMatch(message);
  });
});
