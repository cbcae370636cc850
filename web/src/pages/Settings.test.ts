import { describe, expect, it } from "vitest";
import { retentionFromForm } from "./Settings";

const DAY = 86_400_000;
const operator = { raw_ms: 30 * DAY, minute_ms: 14 * DAY, hour_ms: 400 * DAY, day_ms: null };

describe("the retention form", () => {
  it("turns days into milliseconds; blank is as the hub", () => {
    const r = retentionFromForm({ raw_ms: "7", minute_ms: "", hour_ms: "0.5", day_ms: "730" }, operator);
    expect(r.errors).toEqual({});
    expect(r.value).toEqual({ raw_ms: 7 * DAY, minute_ms: null, hour_ms: DAY / 2, day_ms: 730 * DAY });
  });
  it("says next to each field what cannot be sent", () => {
    const r = retentionFromForm({ raw_ms: "60", minute_ms: "abc", hour_ms: "0.01", day_ms: "-1" }, operator);
    expect(r.errors.raw_ms).toBe("This hub keeps at most 30 days.");
    expect(r.errors.minute_ms).toMatch(/Enter a number of days/);
    expect(r.errors.hour_ms).toMatch(/at least an hour/);
    expect(r.errors.day_ms).toMatch(/Enter a number of days/);
  });
});

describe("the single sign-on rules form", () => {
  it("accepts domains and groups, and says where a rule cannot be sent", async () => {
    const { ruleErrors } = await import("./Settings");
    expect(ruleErrors({ domain_roles: [{ pattern: "Example.com", role: "viewer" }], group_roles: [{ pattern: "ops", role: "admin" }] })).toEqual({});
    expect(ruleErrors({
      domain_roles: [{ pattern: "ann@example.com", role: "viewer" }, { pattern: "a.io", role: "viewer" }, { pattern: "A.io ", role: "admin" }],
      group_roles: [{ pattern: " ", role: "viewer" }],
    })).toEqual({
      "domain_roles[0].pattern": "An email domain such as example.com (without the @).",
      "domain_roles[2].pattern": "This list has a rule for it already.",
      "group_roles[0].pattern": "The group's name as the identity provider sends it.",
    });
  });
});
