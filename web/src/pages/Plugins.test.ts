import { describe, expect, it } from "vitest";
import { budgetNote } from "./Plugins";

describe("the plugin budget note", () => {
  it("says nothing while the tenant was never over, or has no budget", () => {
    expect(budgetNote({ cpu_ms_per_second: 125, throttled_s: 0, throttled_now: false })).toBeUndefined();
    expect(budgetNote({ cpu_ms_per_second: 0, throttled_s: 9, throttled_now: true })).toBeUndefined();
  });
  it("warns while the tenant is over, saying what it costs and what to do", () => {
    const n = budgetNote({ cpu_ms_per_second: 125, throttled_s: 12.5, throttled_now: true })!;
    expect(n.warn).toBe(true);
    expect(n.text).toMatch(/125 ms of CPU per second/);
    expect(n.text).toMatch(/wait before they are stored/);
    expect(n.text).toMatch(/most CPU per call/);
  });
  it("says how long events waited once it is over", () => {
    const n = budgetNote({ cpu_ms_per_second: 250, throttled_s: 3.25, throttled_now: false })!;
    expect(n.warn).toBe(false);
    expect(n.text).toBe("Your plugins may use 250 ms of CPU per second. Your events waited 3.3 s for it since the hub started.");
  });
});
