// Re-pricing history: a changed price, discount or custom model prices new events only; this
// panel says so and asks the hub to price stored events again (POST /v1/costs/reprice), then
// follows the job until it is over.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, explain, get, type Schemas } from "../api/client";
import { int, usd, when } from "../format";

type Job = Schemas["RepriceJobDto"];

/** The ranges offered, in days; the hub refuses more than its operator allows (92 days by default). */
export const RANGES = [1, 7, 30, 92];

/** One line on where a job is. */
export function jobSummary(j: Job): string {
  const done = `${int(j.events_examined)} event${j.events_examined === 1 ? "" : "s"} priced again, ${int(j.events_changed)} changed`;
  const delta = j.events_changed > 0 ? ` (${usd(j.cost_before_usd)} → ${usd(j.cost_after_usd)})` : "";
  switch (j.status) {
    case "queued":
      return "Waiting to start…";
    case "running":
      return `Running: ${done}${delta}${j.reached ? `, back to ${when(j.reached)}` : ""}…`;
    case "done":
      return `Done: ${done}${delta}.`;
    case "cancelled":
      return `Cancelled: ${done}${delta}.`;
    default:
      return `Failed: ${j.error ?? "no reason given"}. ${done}${delta}.`;
  }
}

/** Whole days raw events are kept, `undefined` when forever. */
export function retentionDays(ms: number | null | undefined): number | undefined {
  return ms == null ? undefined : Math.floor(ms / 86_400_000);
}

const active = (j?: Job) => j?.status === "queued" || j?.status === "running";

export function Reprice({ saved }: { saved: boolean }) {
  const qc = useQueryClient();
  const [days, setDays] = useState(7);
  const [model, setModel] = useState("");
  const jobs = useQuery({
    queryKey: ["reprice-jobs"],
    queryFn: () => get<Job[]>("/v1/costs/reprice"),
    refetchInterval: (q) => (active(q.state.data?.[0]) ? 1_000 : false),
  });
  const start = useMutation({
    mutationFn: () =>
      api<Job>("POST", "/v1/costs/reprice", { from: `now-${days}d`, filters: model.trim() ? { model: model.trim() } : {} }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["reprice-jobs"] }),
  });
  const retention = useQuery({
    queryKey: ["retention"],
    queryFn: () => get<Schemas["RetentionDto"]>("/v1/settings/retention"),
  });
  const rawDays = retentionDays(retention.data?.effective.raw_ms);
  const latest = jobs.data?.[0];
  const cancel = useMutation({
    mutationFn: (id: number) => api<Job>("POST", `/v1/costs/reprice/${id}/cancel`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["reprice-jobs"] }),
  });
  return (
    <section aria-label="Re-price stored events" className="reprice">
      <p className={saved ? "state notice" : "muted small"}>
        {saved ? "Saved. " : ""}Prices, discounts and custom models apply to events that arrive from now on; stored events keep the
        cost they were given until you price them again here.
      </p>
      <form className="row" onSubmit={(e) => { e.preventDefault(); start.mutate(); }}>
        <label>
          Events of
          <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
            {RANGES.map((d) => <option key={d} value={d}>{d === 1 ? "the last 24 hours" : `the last ${d} days`}</option>)}
          </select>
        </label>
        <label>
          Only model (optional)
          <input value={model} onChange={(e) => setModel(e.target.value)} placeholder="any model" />
        </label>
        <button type="submit" disabled={start.isPending || active(latest)}>Re-price stored events</button>
      </form>
      {rawDays !== undefined && days > rawDays && (
        <p className="muted small" data-testid="reprice-retention">
          This tenant keeps raw events for {rawDays} days: only those can be priced again; older hourly and daily totals keep
          the cost they have.
        </p>
      )}
      {start.isError && <div className="state error" role="alert">{explain(start.error)}</div>}
      {latest && (
        <div className="row" data-testid="reprice-status" role="status" aria-live="polite">
          <span>{jobSummary(latest)}</span>
          {active(latest) && (
            <button className="secondary" disabled={cancel.isPending} onClick={() => cancel.mutate(latest.id)}>Cancel</button>
          )}
        </div>
      )}
    </section>
  );
}
