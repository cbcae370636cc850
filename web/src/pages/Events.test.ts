import { describe, expect, it } from "vitest";
import { addedByPlugins, inTimeOrder } from "./Events";

describe("what plugins added to an event", () => {
  it("names the plugin that filled each field, in the order they ran", () => {
    const e = {
      event_id: "e1", model: "gpt-4o", provider: "openai", cost_usd: 0.0126,
      tags: { team: "care", model_family: "gpt-4o" },
      payload: { model: "gpt-4o", tags: { team: "care" } },
      enriched_by: [
        { plugin: "cost", fields: ["cost_usd"] },
        { plugin: "registry", fields: ["provider", "tags.model_family"] },
      ],
    } as never;
    expect(addedByPlugins(e)).toEqual([
      { plugin: "cost", field: "cost_usd", value: "$0.0126" },
      { plugin: "registry", field: "provider", value: "openai" },
      { plugin: "registry", field: "tags.model_family", value: "gpt-4o" },
    ]);
  });
  it("falls back to what the sender did not send, unnamed, for events stored before the record", () => {
    const e = {
      event_id: "e1", model: "gpt-4o", provider: "openai", cost_usd: 0.0126, app: "search",
      tags: { team: "care", model_family: "gpt-4o" },
      payload: { model: "gpt-4o", provider: "openai", app: "search", tags: { team: "care" } },
      enriched_by: [],
    } as never;
    expect(addedByPlugins(e)).toEqual([
      { plugin: null, field: "cost_usd", value: "$0.0126" },
      { plugin: null, field: "tags.model_family", value: "gpt-4o" },
    ]);
  });
  it("reads the envelope's nested data too", () => {
    const e = { cost_usd: 1.5, tags: {}, payload: { payload: { data: { cost_usd: 1.5 } } }, enriched_by: [] } as never;
    expect(addedByPlugins(e)).toEqual([]);
  });
});

describe("a correlation's events", () => {
  it("are listed oldest first", () => {
    const e = (id: string, ts: string) => ({ event_id: id, timestamp: ts }) as unknown as Parameters<typeof inTimeOrder>[0][number];
    const out = inTimeOrder([e("c", "2026-12-07T10:02:00Z"), e("a", "2026-12-07T10:00:00Z"), e("b", "2026-12-07T10:00:00Z")]);
    expect(out.map((x) => x.event_id)).toEqual(["a", "b", "c"]);
  });
});
