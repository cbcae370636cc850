import { describe, expect, it } from "vitest";
import { addedByPlugins } from "./Events";

describe("what plugins added to an event", () => {
  it("is what the stored event has and the sender did not send", () => {
    const e = {
      event_id: "e1", model: "gpt-4o", provider: "openai", cost_usd: 0.0126, app: "search",
      tags: { team: "care", model_family: "gpt-4o" },
      payload: { model: "gpt-4o", provider: "openai", app: "search", tags: { team: "care" } },
    } as never;
    expect(addedByPlugins(e)).toEqual([["cost_usd", "$0.0126"], ["tag model_family", "gpt-4o"]]);
  });
  it("reads the envelope's nested data too", () => {
    const e = { cost_usd: 1.5, tags: {}, payload: { payload: { data: { cost_usd: 1.5 } } } } as never;
    expect(addedByPlugins(e)).toEqual([]);
  });
});
