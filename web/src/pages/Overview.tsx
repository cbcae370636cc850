import { useMemo, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { get, query, type Schemas } from "../api/client";
import { Chart, color, type Line } from "../components/Chart";
import { Empty, ErrorNote, Loading } from "../components/States";
import { int, ms, pct, unpricedNote, usd } from "../format";

type Summary = Schemas["SummaryResponse"];
type Series = Schemas["TimeseriesResponse"];

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
        </section>
      )}
      <section className="charts">
        <SeriesChart title="Requests and errors" unit="requests" parts={[["requests", requests.data], ["errors", errors.data]]} />
        <SeriesChart title="Latency" unit="ms" parts={[["p50", p50.data], ["p95", p95.data], ["p99", p99.data]]} />
        <SeriesChart title="Tokens" unit="tokens" parts={[["input", tokensIn.data], ["output", tokensOut.data]]} />
        <SeriesChart title="Cost" unit="USD" parts={[["cost", cost.data]]} />
      </section>
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

function SeriesChart({ title, unit, parts }: { title: string; unit: string; parts: [string, Series | undefined][] }) {
  const data = useMemo(() => {
    const first = parts.find(([, s]) => s?.series?.length)?.[1];
    if (!first) return null;
    const x = first.series[0].points.map((p) => new Date(p.ts).getTime() / 1000);
    const lines: Line[] = parts.map(([label, s], i) => ({
      label,
      color: color(i),
      values: s?.series[0]?.points.map((p) => p.value ?? null) ?? x.map(() => null),
    }));
    return { x, lines };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, parts.map(([, s]) => s));
  if (!data) return <figure className="chart"><figcaption>{title}</figcaption><Empty>No data yet.</Empty></figure>;
  return <Chart title={title} unit={unit} x={data.x} lines={data.lines} />;
}
