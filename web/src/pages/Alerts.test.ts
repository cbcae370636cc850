import { describe, expect, it } from "vitest";
import { deliveryState, matcherText, parseMatchers, ruleBody, ruleSentence, targetsSentence } from "./Alerts";

describe("alert rules in the UI", () => {
  it("sends what the form says, leaving out what was left empty", () => {
    const base = {
      name: " Errors ", severity: "critical", kind: "threshold" as const, metric: "error_rate", op: ">", value: "0.05",
      window: "5m", hold: "", groupBy: ["model"], minRequests: "20", detector: "", minSeverity: "warning", targets: [] as string[],
      join: "and" as const, rules: [] as string[],
    };
    expect(ruleBody(base)).toEqual({
      name: "Errors", severity: "critical",
      condition: { kind: "threshold", metric: "error_rate", op: ">", value: 0.05, window: "5m", group_by: ["model"], min_requests: 20 },
    });
    expect(ruleBody({ ...base, kind: "anomaly", detector: "robust-level" }).condition).toEqual({
      kind: "anomaly", min_severity: "warning", detector: "robust-level",
    });
    expect(ruleBody({ ...base, targets: ["webhook"] }).targets).toEqual(["webhook"]);
    expect(ruleBody({ ...base, kind: "composite", join: "or", rules: ["a", "b"] }).condition).toEqual({
      kind: "composite", op: "or", rules: ["a", "b"],
    });
  });

  it("says where a rule's notices go and what became of a delivery", () => {
    expect(targetsSentence({ targets: ["webhook", "pager"] })).toBe("; notifies webhook, pager");
    expect(targetsSentence({})).toBe("");
    expect(deliveryState({ state: "delivered", attempts: 1 })).toBe("delivered");
    expect(deliveryState({ state: "delivered", attempts: 3 })).toBe("delivered after 3 attempts");
    expect(deliveryState({ state: "queued", attempts: 0, next_at: "x" })).toBe("queued");
    expect(deliveryState({ state: "queued", attempts: 2, next_at: "x" })).toBe("retrying (2 failed)");
    expect(deliveryState({ state: "failed", attempts: 1 })).toBe("given up after 1 attempt");
    expect(deliveryState({ state: "silenced", attempts: 0 })).toBe("silenced, not sent");
  });

  it("reads and writes a silence's matchers as a person types them", () => {
    expect(parseMatchers(" model=gpt-4o, rule != Too many calls ,")).toEqual([
      { name: "model", value: "gpt-4o", op: "=" }, { name: "rule", value: "Too many calls", op: "!=" },
    ]);
    expect(() => parseMatchers("model")).toThrow('"model" is not name=value');
    expect(matcherText([{ name: "model", value: "gpt-4o" }, { name: "rule", value: "x", op: "!=" }])).toBe("model=gpt-4o, rule!=x");
  });

  it("says a rule in a sentence", () => {
    expect(ruleSentence({ condition: { kind: "threshold", metric: "requests", op: ">=", value: 100, window: "1m", group_by: ["model", "app"], for: "2m" } }))
      .toBe("requests >= 100 over 1m per model, app, for 2m");
    expect(ruleSentence({ condition: { kind: "threshold", metric: "cost_usd", value: 5 } })).toBe("cost_usd > 5 over 5m");
    expect(ruleSentence({ condition: { kind: "anomaly" } })).toBe("any anomaly at warning or worse");
    expect(ruleSentence({ condition: { kind: "budget", budget_usd: 500, percent: 80, basis: "spent", group_by: "app" } }))
      .toBe("spend so far this month per app reaches 80% of $500");
    expect(ruleSentence({ condition: { kind: "composite", op: "or", rules: ["a", "b"] } })).toBe("any of a, b firing");
    expect(ruleSentence({ condition: { kind: "budget", percent: 90, budget_from: { integration: "costops", budget_id: "monthly-care" } } }))
      .toBe("projected month-end spend reaches 90% of the budget monthly-care in costops");
    expect(ruleSentence({ condition: { kind: "event", event_kind: "security.threat", min_severity: "error", group_by: "source_module" } }))
      .toBe("1 or more security.threat events at error or worse over 5m per source_module");
  });
});
