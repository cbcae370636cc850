import { useCallback, useMemo, useState } from "react";
import { Link, useNavigate } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { get, query, type Schemas } from "../api/client";
import { chartOf, newest, seriesName, withForecast, type Anomaly, type ChartId, type Forecast } from "../analysis";
import { Chart, color, type Line, type Marker } from "../components/Chart";
import { DailyCosts } from "../components/DailyCosts";
import { Empty, ErrorNote, Loading } from "../components/States";
import { int, ms, pct, unpricedNote, usd, when } from "../format";

type Summary = Schemas["SummaryResponse"];
type Series = Schemas["TimeseriesResponse"];
type Spend = Schemas["SpendProjectionDto"];

export const RANGES = [
  { id: "1h", label: "Last hour", ms: 3_600_000, step: "1m" },
  { id: "24h", label: "Last 24 hours", ms: 86_400_000, step: "5m" },
  { id: "7d", label: "Last 7 days", ms: 7 * 86_400_000, step: "1h" },
  { id: "30d", label: "Last 30 days", ms: 30 * 86_400_000, step: "1d" },
  { id: "90d", label: "Last 90 days", ms: 90 * 86_400_000, step: "1d" },
] as const;

const DIMENSIONS = ["model", "provider", "app", "environment"] as const;

/** The chosen range as query parameters; a custom range comes from two datetime inputs. */
function useRange() {
  const [id, setId] = useState<string>("24h");
  const [custom, setCustom] = useState({ from: "", to: "" });
  const range = RANGES.find((r) => r.id === id);
  const params =
    id === "custom" && custom.from && custom.to
      ? { from: new Date(custom.from).toISOString(), to: new Date(custom.to).toISOString(), step: stepFor(new Date(custom.to).getTime() - new Date(custom.from).getTime()) }
      : { from: `now-${range?.id ?? "24h"}`, to: "now", step: range?.step ?? "5m" };
  return { id, setId, custom, setCustom, params };
}

function stepFor(spanMs: number): string {
  return spanMs <= 6 * 3_600_000 ? "1m" : spanMs <= 3 * 86_400_000 ? "5m" : spanMs <= 14 * 86_400_000 ? "1h" : "1d";
}

export function Overview() {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const r = useRange();
  const [by, setBy] = useState<(typeof DIMENSIONS)[number]>("model");
  const live = { refetchInterval: 10_000 };
  const base = { from: r.params.from, to: r.params.to };
  const totals = useQuery({ queryKey: ["summary", base], queryFn: () => get<Summary>("/v1/metrics/summary" + query(base)), ...live });
  const breakdown = useQuery({ queryKey: ["summary", base, by], queryFn: () => get<Summary>("/v1/metrics/summary" + query({ ...base, group_by: by })), ...live });
  const series = (metric: string) => ({
    queryKey: ["series", metric, r.params],
    queryFn: () => get<Series>("/v1/metrics/timeseries" + query({ ...base, step: r.params.step, metric })),
    ...live,
  });
  const requests = useQuery(series("requests"));
  const errors = useQuery(series("errors"));
  const cost = useQuery(series("cost_usd"));
  const p50 = useQuery(series("latency_p50"));
  const p95 = useQuery(series("latency_p95"));
  const p99 = useQuery(series("latency_p99"));
  const tokensIn = useQuery(series("input_tokens"));
  const tokensOut = useQuery(series("output_tokens"));
  // What the tenant's detectors and forecasters found; nothing when none is installed.
  const anomalies = useQuery({
    queryKey: ["anomalies", base],
    queryFn: () => get<Schemas["AnomalyPageDto"]>("/v1/anomalies" + query({ ...base, limit: 500 })),
    ...live,
  });
  const forecast = (metric: string) => ({
    queryKey: ["forecasts", metric],
    queryFn: () => get<Schemas["ForecastListDto"]>("/v1/forecasts" + query({ metric }) + "&group_by="),
    ...live,
  });
  const requestsAhead = useQuery(forecast("requests"));
  const costAhead = useQuery(forecast("cost_usd"));
  const spend = useQuery({ queryKey: ["spend"], queryFn: () => get<Spend>("/v1/forecasts/spend?period=month"), ...live });
  const markers = useMemo(() => markersByChart(anomalies.data?.anomalies ?? []), [anomalies.data]);
  const openAnomaly = useCallback((id: number) => navigate(`/anomalies?id=${id}`), [navigate]);
  // A forecast shows when the range ends now, reaching a third of the range ahead.
  const until = r.id === "custom" ? undefined : Date.now() / 1000 + (RANGES.find((x) => x.id === r.id)?.ms ?? 0) / 3000;

  const t = totals.data?.groups[0];
  const errorRate = t && t.requests > 0 ? t.errors / t.requests : null;
  const topByCost = useMemo(
    () => [...(breakdown.data?.groups ?? [])].sort((a, b) => b.cost_usd - a.cost_usd).slice(0, 5),
    [breakdown.data],
  );

  return (
    <div>
      <header className="page-head">
        <h1>Overview</h1>
        <div className="toolbar" role="group" aria-label="Time range">
          <select aria-label="Time range" value={r.id} onChange={(e) => r.setId(e.target.value)}>
            {RANGES.map((x) => (
              <option key={x.id} value={x.id}>{x.label}</option>
            ))}
            <option value="custom">Custom…</option>
          </select>
          {r.id === "custom" && (
            <>
              <input type="datetime-local" aria-label="From" value={r.custom.from} onChange={(e) => r.setCustom({ ...r.custom, from: e.target.value })} />
              <input type="datetime-local" aria-label="To" value={r.custom.to} onChange={(e) => r.setCustom({ ...r.custom, to: e.target.value })} />
            </>
          )}
          <span className="muted live" title="Refreshes every 10 seconds">● live</span>
          <button className="secondary" onClick={() => qc.invalidateQueries({ queryKey: ["summary"] }).then(() => qc.invalidateQueries({ queryKey: ["series"] }))}>
            Refresh
          </button>
        </div>
      </header>
      {totals.isPending ? (
        <Loading what="totals" />
      ) : totals.isError ? (
        <ErrorNote error={totals.error} retry={() => totals.refetch()} />
      ) : !t || t.events === 0 ? (
        <Empty>No events in this range yet. Send some with an API key (Settings → API keys) to POST /v1/events.</Empty>
      ) : (
        <section className="tiles" aria-label="Totals">
          <Tile label="Requests" value={int(t.requests)} testid="requests" />
          <Tile label="Errors" value={int(t.errors)} testid="errors" />
          <Tile label="Error rate" value={pct(errorRate)} testid="error-rate" />
          <Tile label="Input tokens" value={int(t.input_tokens)} testid="input-tokens" />
          <Tile label="Output tokens" value={int(t.output_tokens)} testid="output-tokens" />
          <Tile label="Cost" value={usd(t.cost_usd)} testid="cost" note={unpricedNote(t.unpriced_events, t.unpriced_tokens)} />
          <Tile label="Latency p50" value={ms(t.latency_ms.p50)} testid="p50" />
          <Tile label="p95" value={ms(t.latency_ms.p95)} testid="p95" />
          <Tile label="p99" value={ms(t.latency_ms.p99)} testid="p99" />
          {spend.data && <SpendTile s={spend.data} />}
        </section>
      )}
      <section className="charts">
        <SeriesChart title="Requests and errors" unit="requests" parts={[["requests", requests.data], ["errors", errors.data]]}
          markers={markers.traffic} onMarker={openAnomaly} ahead={until ? newest(requestsAhead.data?.forecasts ?? []) : undefined} until={until} />
        <SeriesChart title="Latency" unit="ms" parts={[["p50", p50.data], ["p95", p95.data], ["p99", p99.data]]} markers={markers.latency} onMarker={openAnomaly} />
        <SeriesChart title="Tokens" unit="tokens" parts={[["input", tokensIn.data], ["output", tokensOut.data]]} markers={markers.tokens} onMarker={openAnomaly} />
        <SeriesChart title="Cost" unit="USD" parts={[["cost", cost.data]]}
          markers={markers.cost} onMarker={openAnomaly} ahead={until ? newest(costAhead.data?.forecasts ?? []) : undefined} until={until} />
      </section>
      <RecentAnomalies list={anomalies.data?.anomalies ?? []} from={base.from} onOpen={openAnomaly} />
      <section className="panel">
        <div className="page-head">
          <h2>Breakdown</h2>
          <div role="tablist" aria-label="Break down by">
            {DIMENSIONS.map((d) => (
              <button key={d} role="tab" aria-selected={by === d} className={by === d ? "tab on" : "tab"} onClick={() => setBy(d)}>
                {d}
              </button>
            ))}
          </div>
        </div>
        {breakdown.isError ? (
          <ErrorNote error={breakdown.error} retry={() => breakdown.refetch()} />
        ) : (
          <table>
            <thead>
              <tr><th>{by}</th><th>Requests</th><th>Errors</th><th>Input tokens</th><th>Output tokens</th><th>Cost</th><th title="Calls whose model has no price: their cost is unknown, not $0">Unpriced</th><th>p50</th><th>p95</th><th>p99</th></tr>
            </thead>
            <tbody>
              {(breakdown.data?.groups ?? []).map((g) => (
                <tr key={String(g.key[by])}>
                  <td>{String(g.key[by] ?? "(none)")}</td>
                  <td>{int(g.requests)}</td><td>{int(g.errors)}</td><td>{int(g.input_tokens)}</td><td>{int(g.output_tokens)}</td>
                  <td>{usd(g.cost_usd)}</td><td>{g.unpriced_events ? `${int(g.unpriced_events)} (${int(g.unpriced_tokens)} tokens)` : "–"}</td><td>{ms(g.latency_ms.p50)}</td><td>{ms(g.latency_ms.p95)}</td><td>{ms(g.latency_ms.p99)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {by === "model" && topByCost.length > 0 && (
          <div className="top">
            <h3>Top models by cost</h3>
            <ol>
              {topByCost.map((g) => (
                <li key={String(g.key.model)}>{String(g.key.model ?? "(none)")} — {usd(g.cost_usd)}</li>
              ))}
            </ol>
          </div>
        )}
      </section>
      <DailyCosts />
    </div>
  );
}

function Tile({ label, value, testid, note }: { label: string; value: string; testid: string; note?: string }) {
  return (
    <div className="tile" data-testid={testid}>
      <div className="muted">{label}</div>
      <div className="big">{value}</div>
      {note && <div className="small warn">{note}</div>}
    </div>
  );
}

function SeriesChart({ title, unit, parts, markers, onMarker, ahead, until }: {
  title: string;
  unit: string;
  parts: [string, Series | undefined][];
  markers?: Marker[];
  onMarker?: (id: number) => void;
  /** A forecast of the first part, drawn after it as a dashed line in its band. */
  ahead?: Forecast;
  until?: number;
}) {
  const data = useMemo(() => {
    const first = parts.find(([, s]) => s?.series?.length)?.[1];
    if (!first) return null;
    const x = first.series[0].points.map((p) => new Date(p.ts).getTime() / 1000);
    const lines: Line[] = parts.map(([label, s], i) => ({
      label,
      color: color(i),
      values: s?.series[0]?.points.map((p) => p.value ?? null) ?? x.map(() => null),
    }));
    return withForecast(x, lines, ahead, until ?? 0);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...parts.map(([, s]) => s), ahead, until && Math.floor(until / 60)]);
  if (!data) return <figure className="chart"><figcaption>{title}</figcaption><Empty>No data yet.</Empty></figure>;
  return <Chart title={title} unit={unit} x={data.x} lines={data.lines} band={data.band} markers={markers} onMarker={onMarker} />;
}

/** Each anomaly as a marker on the chart of its metric. */
function markersByChart(list: Anomaly[]): Record<ChartId, Marker[]> {
  const out: Record<ChartId, Marker[]> = { traffic: [], latency: [], tokens: [], cost: [] };
  for (const a of list) {
    const c = chartOf(a.metric);
    if (c) out[c].push({ ts: new Date(a.ts).getTime() / 1000, id: a.id, severity: a.severity, score: a.score, text: `${a.metric} of ${seriesName(a.series)}: ${a.reason}` });
  }
  return out;
}

/** Spent this month, and where the month is heading (a forecaster's, or the run rate). */
function SpendTile({ s }: { s: Spend }) {
  const t = s.total;
  const how = t.method === "forecast" ? `forecast by ${t.plugin}` : "projected at this month's rate";
  return (
    <div className="tile" data-testid="month-end" title={`Spent since ${when(s.period_start)}: ${usd(t.actual_usd)}`}>
      <div className="muted">Month-end spend</div>
      <div className="big">{usd(t.projected_usd)}</div>
      <div className="small muted range">
        {t.lower_usd !== t.upper_usd && <>{usd(t.lower_usd)}–{usd(t.upper_usd)} · </>}
        {usd(t.actual_usd)} so far, {how}
      </div>
    </div>
  );
}

/** The newest anomalies of the range, each opening its page. */
function RecentAnomalies({ list, from, onOpen }: { list: Anomaly[]; from: string; onOpen: (id: number) => void }) {
  if (list.length === 0) return null;
  return (
    <section className="panel" aria-label="Anomalies in this range">
      <div className="page-head">
        <h2>Anomalies <span className="muted">{list.length >= 500 ? "500+" : list.length}</span></h2>
        <Link to={`/anomalies?from=${encodeURIComponent(from)}`}>All anomalies</Link>
      </div>
      <table>
        <tbody>
          {list.slice(0, 5).map((a) => (
            <tr key={a.id} className="clickable" tabIndex={0} onClick={() => onOpen(a.id)} onKeyDown={(e) => e.key === "Enter" && onOpen(a.id)}>
              <td>{when(a.ts)}</td>
              <td><span className={`badge ${a.severity}`}>{a.severity}</span></td>
              <td>{a.reason}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
