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
