import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { get, query, type Schemas } from "../api/client";
import { eventsLink, SERIES_METRICS, seriesName, unitOf, valueOf, type Anomaly } from "../analysis";
import { Chart, type Marker } from "../components/Chart";
import { useCursors } from "../components/Pager";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";
import { RANGES } from "./Overview";

type Page = Schemas["AnomalyPageDto"];
type Context = Schemas["AnomalyContextDto"];

/** What the tenant's detectors found: filters, newest first, and one opened with its series around it. */
export function Anomalies() {
  const [params, setParams] = useSearchParams();
  const open = params.get("id");
  const [filters, setFilters] = useState<Record<string, string>>(() => ({ from: params.get("from") ?? "now-7d" }));
  const { cursor, reset, pager } = useCursors();
  const q = { ...filters, cursor, limit: 50 };
  const page = useQuery({ queryKey: ["anomalies-page", q], queryFn: () => get<Page>("/v1/anomalies" + query(q)), refetchInterval: 30_000 });
  const set = (k: string, v: string) => { reset(); setFilters({ ...filters, [k]: v }); };
  const show = (id: number | null) => {
    const next = new URLSearchParams(params);
    if (id == null) next.delete("id");
    else next.set("id", String(id));
    setParams(next);
  };
  return (
    <div>
      <header className="page-head"><h1>Anomalies</h1></header>
      {open && <AnomalyDetail id={open} onClose={() => show(null)} />}
      <form className="panel filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>range
          <select value={filters.from} onChange={(e) => set("from", e.target.value)}>
            {RANGES.map((r) => <option key={r.id} value={`now-${r.id}`}>{r.label}</option>)}
            {!RANGES.some((r) => `now-${r.id}` === filters.from) && <option value={filters.from}>since {filters.from}</option>}
          </select>
        </label>
        <label>metric
          <select value={filters.metric ?? ""} onChange={(e) => set("metric", e.target.value)}>
            <option value="">any</option>
            {SERIES_METRICS.map((m) => <option key={m}>{m}</option>)}
          </select>
        </label>
        <label>severity at least
          <select value={filters.severity ?? ""} onChange={(e) => set("severity", e.target.value)}>
            <option value="">any</option><option>warning</option><option>critical</option>
          </select>
        </label>
        <label>detector<input value={filters.plugin ?? ""} onChange={(e) => set("plugin", e.target.value)} placeholder="robust-level" /></label>
        <label>series<input value={filters.filter ?? ""} onChange={(e) => set("filter", e.target.value)} placeholder="model:gpt-4o" /></label>
      </form>
      {page.isPending ? <Loading what="anomalies" /> : page.isError ? <ErrorNote error={page.error} retry={() => page.refetch()} /> :
        page.data.anomalies.length === 0 ? (
          <Empty>No anomalies match. Detectors (robust-level, change-point, llm-signals in the marketplace) find them once installed.</Empty>
        ) : (
          <>
            <table>
              <thead><tr><th>Time</th><th>Severity</th><th>Metric</th><th>Series</th><th>Value</th><th>Expected</th><th>What happened</th><th>Detector</th></tr></thead>
              <tbody>
                {page.data.anomalies.map((a) => (
                  <tr key={a.id} tabIndex={0} className="clickable" onClick={() => show(a.id)} onKeyDown={(k) => k.key === "Enter" && show(a.id)}>
                    <td>{when(a.ts)}</td><td><span className={`badge ${a.severity}`}>{a.severity}</span></td><td>{a.metric}</td>
                    <td>{seriesName(a.series)}</td><td>{valueOf(a.metric, a.value)}</td><td>{expected(a)}</td><td>{a.reason}</td><td>{a.plugin}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {pager(page.data.next_cursor)}
          </>
        )}
    </div>
  );
}

function expected(a: Anomaly): string {
  const range = a.lower != null && a.upper != null ? ` (${valueOf(a.metric, a.lower)} to ${valueOf(a.metric, a.upper)})` : "";
  return a.expected == null ? "–" : valueOf(a.metric, a.expected) + range;
}

/** One anomaly with its series from the rollups around it (shown above the list, in view). */
function AnomalyDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const ctx = useQuery({ queryKey: ["anomaly", id], queryFn: () => get<Context>(`/v1/anomalies/${encodeURIComponent(id)}/context`) });
  const chart = useMemo(() => {
    if (!ctx.data) return null;
    const a = ctx.data.anomaly;
    const x = ctx.data.points.map((p) => new Date(p.ts).getTime() / 1000);
    const flat = (v: number | null | undefined) => x.map(() => v ?? null);
    const lines = [
      { label: a.metric, color: "#2563eb", values: ctx.data.points.map((p) => p.value ?? null) },
      ...(a.upper != null && a.lower != null
        ? [{ label: "upper", color: "rgba(100,116,139,0.5)", dash: [4, 4], values: flat(a.upper) }, { label: "lower", color: "rgba(100,116,139,0.5)", dash: [4, 4], values: flat(a.lower) }]
        : []),
    ];
    const markers: Marker[] = [{ ts: new Date(a.ts).getTime() / 1000, id: a.id, severity: a.severity, text: a.reason }];
    return { x, lines, markers, band: lines.length === 3 ? ([1, 2] as [number, number]) : undefined };
  }, [ctx.data]);
  return (
    <section className="panel detail" aria-label="Anomaly">
      <div className="page-head">
        <h2>Anomaly</h2>
        <button className="secondary" onClick={onClose}>Close</button>
      </div>
      {ctx.isPending ? <Loading what="the anomaly" /> : ctx.isError ? <ErrorNote error={ctx.error} /> : (
        <div className="columns">
          <dl className="kv">
            <dt>What happened</dt><dd data-testid="anomaly-reason">{ctx.data.anomaly.reason}</dd>
            <dt>Severity</dt><dd><span className={`badge ${ctx.data.anomaly.severity}`}>{ctx.data.anomaly.severity}</span> score {ctx.data.anomaly.score.toFixed(1)}</dd>
            <dt>Series</dt><dd>{ctx.data.anomaly.metric} of {seriesName(ctx.data.anomaly.series)}, every {ctx.data.anomaly.step}</dd>
            <dt>When</dt><dd>{when(ctx.data.anomaly.ts)}</dd>
            <dt>Value</dt><dd>{valueOf(ctx.data.anomaly.metric, ctx.data.anomaly.value)}</dd>
            <dt>Expected</dt><dd>{expected(ctx.data.anomaly)}</dd>
            <dt>Detector</dt><dd>{ctx.data.anomaly.plugin}, {when(ctx.data.anomaly.detected_at)}</dd>
            <dt>Events</dt><dd><Link to={anomalyEvents(ctx.data.anomaly)}>the events of this series at that time</Link></dd>
          </dl>
          {chart && chart.x.length > 0 ? (
            <Chart title="The series around it" unit={unitOf(ctx.data.anomaly.metric)} x={chart.x} lines={chart.lines} band={chart.band} markers={chart.markers} />
          ) : <Empty>Its rollups are no longer kept.</Empty>}
        </div>
      )}
    </section>
  );
}

const STEPS: Record<string, number> = { "1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000 };

/** The events of an anomaly's series over its step (and the step before, for context). */
export function anomalyEvents(a: Anomaly): string {
  const t = new Date(a.ts).getTime();
  const step = STEPS[a.step] ?? 60_000;
  return eventsLink(a.series as Record<string, unknown>, t - step, t + step);
}
