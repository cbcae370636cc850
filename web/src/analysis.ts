// What detectors and forecasters found, shaped for the charts: which chart an anomaly's metric
// belongs on, a series' name in words, the newest forecast of several, and a chart's axis
// extended by a forecast with its band.
import type { Schemas } from "./api/client";
import type { Line, Marker } from "./components/Chart";

export type Anomaly = Schemas["AnomalyDto"];
export type Forecast = Schemas["ForecastDto"];

/** The metrics a detector or forecaster can watch (the hub's `series.metrics`). */
export const SERIES_METRICS = [
  "requests", "errors", "error_rate", "input_tokens", "output_tokens", "cost_usd",
  "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
] as const;

/** The dimensions a series can be grouped by, besides `tag.<name>`. */
export const SERIES_DIMENSIONS = ["model", "provider", "app", "environment", "operation", "source_module"] as const;

export const SERIES_STEPS = ["1m", "5m", "1h", "1d"] as const;

/** The overview chart each metric is drawn on. */
export type ChartId = "traffic" | "latency" | "tokens" | "cost";
export function chartOf(metric: string): ChartId | undefined {
  if (metric === "requests" || metric === "errors" || metric === "error_rate") return "traffic";
  if (metric.startsWith("latency_")) return "latency";
  if (metric.endsWith("_tokens")) return "tokens";
  if (metric === "cost_usd") return "cost";
  return undefined;
}

/** A value in the metric's own terms. */
export function valueOf(metric: string, v: number | null | undefined): string {
  if (v == null) return "–";
  if (metric === "cost_usd") return "$" + v.toFixed(v < 1 ? 4 : 2);
  if (metric === "error_rate") return (v * 100).toFixed(1) + "%";
  if (metric.startsWith("latency_")) return Math.round(v).toLocaleString("en-US") + " ms";
  return (Math.round(v * 100) / 100).toLocaleString("en-US");
}

/** The unit a chart of the metric shows on its axis. */
export function unitOf(metric: string): string {
  return metric === "cost_usd" ? "USD" : metric.startsWith("latency_") ? "ms" : metric === "error_rate" ? "share" : metric.replace("_", " ");
}

/** `model=gpt-4o, app=bot`, or "all traffic" for the tenant's total. */
export function seriesName(series: Record<string, unknown>): string {
  const parts = Object.entries(series).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length ? parts.join(", ") : "all traffic";
}

/** The most recently made of several forecasts (one per forecaster), if any. */
export function newest(forecasts: Forecast[]): Forecast | undefined {
  return forecasts.reduce<Forecast | undefined>((a, f) => (!a || f.made_at > a.made_at ? f : a), undefined);
}

/**
 * A chart's axis and lines with a forecast after them: the union of the observed times and the
 * forecast's (up to `until`, seconds), each line null where it has no point, and the forecast as
 * three lines (mean, then upper and lower, whose indices `band` gives for the fill between them).
 */
export function withForecast(
  x: number[],
  lines: Line[],
  f: Forecast | undefined,
  until: number,
): { x: number[]; lines: Line[]; band?: [number, number] } {
  const points = (f?.points ?? [])
    .map((p) => ({ t: new Date(p.ts).getTime() / 1000, ...p }))
    .filter((p) => p.t <= until);
  if (!f || points.length === 0) return { x, lines };
  const axis = [...new Set([...x, ...points.map((p) => p.t)])].sort((a, b) => a - b);
  const at = (times: number[], values: (number | null)[]) => {
    const byTime = new Map(times.map((t, i) => [t, values[i]]));
    return axis.map((t) => byTime.get(t) ?? null);
  };
  const ft = points.map((p) => p.t);
  const pct = Math.round(f.level * 100);
  const grey = "#64748b";
  const out: Line[] = [
    ...lines.map((l) => ({ ...l, values: at(x, l.values) })),
    { label: `forecast (${f.plugin})`, color: grey, dash: [6, 4], spanGaps: true, values: at(ft, points.map((p) => p.mean)) },
    { label: `upper ${pct}%`, color: "rgba(100,116,139,0.35)", spanGaps: true, values: at(ft, points.map((p) => p.upper)) },
    { label: `lower ${pct}%`, color: "rgba(100,116,139,0.35)", spanGaps: true, values: at(ft, points.map((p) => p.lower)) },
  ];
  return { x: axis, lines: out, band: [out.length - 2, out.length - 1] };
}

/**
 * The series override a configuration form sends: the tenant's earlier override, with every
 * field the person changed from what the plugin watched when the form opened.
 */
export function seriesOverride(
  resolved: Record<string, unknown>,
  earlier: Record<string, unknown> | undefined,
  edited: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = { ...(earlier ?? {}) };
  for (const [k, v] of Object.entries(edited)) {
    if (JSON.stringify(v) !== JSON.stringify(resolved[k])) out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

const SEVERITY_RANK: Record<string, number> = { info: 0, warning: 1, critical: 2 };

/** Markers in drawing order: where two overlap, the more severe (then the higher score) is drawn
 * last, on top, so it is the one a click reaches. */
export function drawingOrder(markers: Marker[]): Marker[] {
  const rank = (m: Marker) => SEVERITY_RANK[m.severity] ?? 0;
  return [...markers].sort((a, b) => rank(a) - rank(b) || (a.score ?? 0) - (b.score ?? 0));
}

/** The event filters a series' or an alert group's dimensions become (tags are not filters). */
const EVENT_DIMENSIONS = ["model", "provider", "app", "environment", "operation", "source_module"];

/** The Events page showing the events of a series (or an alert's group) over `[from, to)`. */
export function eventsLink(dims: Record<string, unknown>, from: number, to: number): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(dims)) if (EVENT_DIMENSIONS.includes(k) && v != null) q.set(k, String(v));
  q.set("from", new Date(from).toISOString());
  q.set("to", new Date(to).toISOString());
  return `/events?${q.toString()}`;
}
