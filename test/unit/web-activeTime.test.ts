import { describe, expect, it } from "vitest";
import { ActiveTimer } from "../../web/src/editor/activeTime.js";

function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("active time", () => {
  it("counts time between activity events", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now);
    timer.activity();
    c.advance(5_000);
    timer.activity();
    c.advance(10_000);
    timer.edit();
    expect(timer.activeMs()).toBe(15_000);
    expect(timer.edits).toBe(1);
  });

  it("counts an idle gap only up to 30 s", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now);
    timer.activity();
    c.advance(10_000);
    timer.activity();
    c.advance(5 * 60_000); // five minutes away from the desk
    timer.activity();
    c.advance(2_000);
    timer.activity();
    expect(timer.activeMs()).toBe(10_000 + 30_000 + 2_000);
  });

  it("does not count the open interval beyond the idle limit", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now);
    timer.activity();
    c.advance(12_000);
    expect(timer.activeMs()).toBe(12_000);
    c.advance(600_000);
    expect(timer.activeMs()).toBe(30_000);
  });

  it("does not count time while the tab is hidden, nor events from a hidden tab", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now);
    timer.activity();
    c.advance(4_000);
    timer.setVisible(false);
    c.advance(20_000);
    timer.activity();
    timer.edit();
    c.advance(20_000);
    expect(timer.activeMs()).toBe(4_000);
    timer.setVisible(true);
    c.advance(3_000);
    timer.activity();
    expect(timer.activeMs()).toBe(7_000);
    expect(timer.edits).toBe(0);
  });

  it("starts from a restored amount and reports the span of activity", () => {
    const c = fakeClock(1_000_000);
    const timer = new ActiveTimer(c.now, 30_000, 90_000);
    expect(timer.span().startedAt).toBeNull();
    timer.activity();
    c.advance(1_000);
    timer.edit();
    expect(timer.activeMs()).toBe(91_000);
    expect(timer.span().startedAt?.getTime()).toBe(1_000_000);
    expect(timer.span().endedAt?.getTime()).toBe(1_001_000);
  });

  it("honours a custom idle limit", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now, 1_000);
    timer.activity();
    c.advance(5_000);
    timer.activity();
    expect(timer.activeMs()).toBe(1_000);
  });

  it("stops at the one clock reading it is given, however late it is read", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now);
    const opened = c.now();
    timer.activity();
    c.advance(8_000);
    timer.edit();
    c.advance(4_000);
    const end = c.now(); // the reading taken when Submit is pressed
    // A slow machine: encoding the mask takes 20 s before the request is built.
    c.advance(20_000);
    const active = timer.stopAt(end);
    expect(active).toBe(12_000);
    expect(active).toBeLessThanOrEqual(end - opened);
    // Stopped: nothing more counts until the next activity, so the draft saved now agrees.
    c.advance(5_000);
    expect(timer.activeMs()).toBe(12_000);
    expect(timer.span().endedAt?.getTime()).toBe(end);
    // A retry after a failed submission counts from the next activity on.
    timer.activity();
    c.advance(3_000);
    expect(timer.stopAt(c.now())).toBe(15_000);
  });

  it("adds no negative interval for a reading older than the last activity", () => {
    const c = fakeClock();
    const timer = new ActiveTimer(c.now, 30_000, 2_000);
    timer.activity();
    const end = c.now();
    c.advance(1_000);
    timer.activity(); // an event handled after the reading was taken (the page never does this)
    expect(timer.stopAt(end)).toBe(2_000 + 1_000);
    expect(timer.activeMs()).toBe(3_000);
  });
});
