import { describe, expect, it } from "vitest";
import { jobSummary, retentionDays } from "./Reprice";

const job = {
  id: 1, status: "running", requested_by: "ann@example.com", from: "2026-12-01T00:00:00.000Z", to: "2026-12-05T00:00:00.000Z",
  filters: {}, events_examined: 1500, events_changed: 20, cost_before_usd: 1.5, cost_after_usd: 1.35,
  reached: null, error: null, created_at: "2026-12-05T00:00:00.000Z", started_at: null, finished_at: null,
};

describe("a re-pricing job in one line", () => {
  it("says how far it got and what the changed events cost before and after", () => {
    expect(jobSummary({ ...job, status: "done" })).toBe("Done: 1,500 events priced again, 20 changed ($1.50 → $1.35).");
    expect(jobSummary({ ...job, events_changed: 0, status: "done" })).toBe("Done: 1,500 events priced again, 0 changed.");
    expect(jobSummary(job)).toMatch(/^Running: 1,500 events priced again, 20 changed/);
  });
  it("says why it failed", () => {
    expect(jobSummary({ ...job, status: "failed", error: "plugin `cost` failed: deadline" })).toMatch(/^Failed: plugin `cost` failed: deadline\./);
    expect(jobSummary({ ...job, status: "queued" })).toBe("Waiting to start…");
  });
});

describe("how far back events can be priced again", () => {
  it("is as long as raw events are kept", () => {
    expect(retentionDays(30 * 86_400_000)).toBe(30);
    expect(retentionDays(null)).toBeUndefined();
  });
});
