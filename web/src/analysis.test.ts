import { describe, expect, it } from "vitest";
import { chartOf, drawingOrder, eventsLink, newest, seriesName, seriesOverride, valueOf, withForecast, type Forecast } from "./analysis";
import { watches } from "./pages/Plugins";

const forecast = (made_at: string, plugin = "ets"): Forecast => ({
  plugin, made_at, metric: "requests", series: {}, step: "1h", level: 0.95,
  points: [
    { ts: "2026-12-07T11:00:00Z", mean: 10, lower: 8, upper: 12 },
    { ts: "2026-12-07T12:00:00Z", mean: 11, lower: 7, upper: 15 },
    { ts: "2026-12-07T13:00:00Z", mean: 12, lower: 6, upper: 18 },
  ],
});
const s = (iso: string) => new Date(iso).getTime() / 1000;

describe("anomalies on the overview's charts", () => {
  it("go to the chart of their metric", () => {
    expect(chartOf("requests")).toBe("traffic");
    expect(chartOf("error_rate")).toBe("traffic");
    expect(chartOf("latency_p95_ms")).toBe("latency");
    expect(chartOf("output_tokens")).toBe("tokens");
    expect(chartOf("cost_usd")).toBe("cost");
    expect(chartOf("something_new")).toBeUndefined();
  });
  it("name their series in words", () => {
    expect(seriesName({})).toBe("all traffic");
    expect(seriesName({ model: "gpt-4o", app: "bot" })).toBe("model=gpt-4o, app=bot");
  });
  it("show their values in the metric's terms", () => {
    expect(valueOf("cost_usd", 0.5)).toBe("$0.5000");
    expect(valueOf("error_rate", 0.125)).toBe("12.5%");
    expect(valueOf("latency_p95_ms", 1234.4)).toBe("1,234 ms");
    expect(valueOf("requests", null)).toBe("–");
  });
});

describe("a forecast after a chart's lines", () => {
  const x = [s("2026-12-07T09:00:00Z"), s("2026-12-07T09:30:00Z"), s("2026-12-07T10:00:00Z")];
  const lines = [{ label: "requests", color: "#000", values: [1, 2, 3] }];
  it("leaves the chart alone without one", () => {
    expect(withForecast(x, lines, undefined, s("2026-12-08T00:00:00Z"))).toEqual({ x, lines });
  });
  it("extends the axis by its points up to the limit, each line null where it has none", () => {
    const out = withForecast(x, lines, forecast("2026-12-07T10:01:00Z"), s("2026-12-07T12:00:00Z"));
    expect(out.x).toEqual([...x, s("2026-12-07T11:00:00Z"), s("2026-12-07T12:00:00Z")]);
    expect(out.lines.map((l) => l.label)).toEqual(["requests", "forecast (ets)", "upper 95%", "lower 95%"]);
    expect(out.lines[0].values).toEqual([1, 2, 3, null, null]);
    expect(out.lines[1].values).toEqual([null, null, null, 10, 11]);
    expect(out.lines[2].values).toEqual([null, null, null, 12, 15]);
    expect(out.lines[3].values).toEqual([null, null, null, 8, 7]);
    expect(out.band).toEqual([2, 3]);
  });
  it("draws nothing when all of it lies past the limit", () => {
    expect(withForecast(x, lines, forecast("2026-12-07T10:01:00Z"), s("2026-12-07T10:30:00Z")).lines).toBe(lines);
  });
  it("is the newest of several forecasters'", () => {
    expect(newest([forecast("2026-12-07T10:01:00Z", "a"), forecast("2026-12-07T10:05:00Z", "b"), forecast("2026-12-07T09:00:00Z", "c")])?.plugin).toBe("b");
    expect(newest([])).toBeUndefined();
  });
});

describe("a configuration form's series", () => {
  const resolved = { metrics: ["requests"], group_by: ["model"], step: "5m", history: "15d", max_series: 200, every: "5m" };
  it("send nothing when nothing changed and the tenant never chose", () => {
    expect(seriesOverride(resolved, undefined, { ...resolved })).toBeUndefined();
  });
  it("send what changed, over the tenant's earlier choices", () => {
    expect(seriesOverride(resolved, { history: "15d" }, { ...resolved, step: "1m", group_by: [] }))
      .toEqual({ history: "15d", step: "1m", group_by: [] });
  });
  it("read as a sentence on the plugins page", () => {
    expect(watches(resolved, "detector")).toBe("Watches requests per model, a point every 5m over 15d (at most 200 series); runs every 5m.");
    expect(watches({ ...resolved, group_by: [], horizon: 48 }, "forecaster")).toMatch(/of all traffic, .* runs every 5m, 48 points ahead\.$/);
  });
});

describe("drawingOrder", () => {
  it("draws the most unusual of overlapping markers last, on top, where a click lands", () => {
    const m = (id: number, severity: string, score?: number) => ({ ts: 60, id, severity, text: "", score });
    const order = drawingOrder([m(1, "critical", 20), m(2, "critical", 4.3), m(3, "warning", 50), m(4, "info")]);
    expect(order.map((x) => x.id)).toEqual([4, 3, 2, 1]);
  });
});

describe("links from a series to its events", () => {
  it("filters by the series' dimensions and the time around it, leaving tags out", () => {
    const from = Date.parse("2026-12-07T10:00:00Z");
    const link = eventsLink({ model: "gpt-4o", app: "search", "tag.team": "x" }, from, from + 120_000);
    const q = new URLSearchParams(link.split("?")[1]);
    expect(link.startsWith("/events?")).toBe(true);
    expect(Object.fromEntries(q)).toEqual({
      model: "gpt-4o", app: "search", from: "2026-12-07T10:00:00.000Z", to: "2026-12-07T10:02:00.000Z",
    });
  });
});
