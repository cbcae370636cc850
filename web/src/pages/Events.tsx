import { useState } from "react";
import { useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { get, query, type Schemas } from "../api/client";
import { useCursors } from "../components/Pager";
import { Empty, ErrorNote, Loading } from "../components/States";
import { int, ms, usd, when } from "../format";

type Page = Schemas["EventPageDto"];
type Event = Schemas["EventDto"];
const FILTERS = ["model", "provider", "app", "environment", "kind", "status", "severity", "source_module", "correlation_id", "trace_id", "session_id"] as const;
const LINKED = [...FILTERS, "id", "from", "to", "operation"] as const;

/** `datetime-local` speaks local time without a zone; the API takes RFC 3339. */
const iso = (local: string) => (local ? new Date(local).toISOString() : "");
const local = (iso: string | undefined) => {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};

export function Events() {
  // A link from an anomaly, an alert or another page sets the filters it names.
  const [params0] = useSearchParams();
  const [filters, setFilters] = useState<Record<string, string>>(() =>
    Object.fromEntries(LINKED.flatMap((k) => (params0.get(k) ? [[k, params0.get(k)!]] : []))));
  const { cursor, reset, pager } = useCursors();
  const [open, setOpen] = useState<string | null>(null);
  const params = { ...filters, cursor, limit: 50 };
  const page = useQuery({ queryKey: ["events", params], queryFn: () => get<Page>("/v1/events" + query(params)) });
  const set = (k: string, v: string) => { reset(); setFilters({ ...filters, [k]: v }); };
  return (
    <div>
      <header className="page-head"><h1>Events</h1></header>
      <form className="panel filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label className="wide">any id starts with<input value={filters.id ?? ""} onChange={(e) => set("id", e.target.value)} placeholder="event, trace, session, correlation or user id" maxLength={256} /></label>
        <label>from<input type="datetime-local" value={local(filters.from)} onChange={(e) => set("from", iso(e.target.value))} /></label>
        <label>to<input type="datetime-local" value={local(filters.to)} onChange={(e) => set("to", iso(e.target.value))} /></label>
        {FILTERS.map((f) => (
          <label key={f}>{f.replace("_", " ")}<input value={filters[f] ?? ""} onChange={(e) => set(f, e.target.value)} /></label>
        ))}
      </form>
      {page.isPending ? <Loading what="events" /> : page.isError ? <ErrorNote error={page.error} retry={() => page.refetch()} /> :
        page.data.events.length === 0 ? <Empty>No events match.</Empty> : (
          <>
            <table>
              <thead><tr><th>Time</th><th>Event id</th><th>Kind</th><th>Model</th><th>App</th><th>Status</th><th>Tokens in/out</th><th>Latency</th><th>Cost</th></tr></thead>
              <tbody>
                {page.data.events.map((e) => (
                  <tr key={e.event_id + e.timestamp} tabIndex={0} className="clickable" onClick={() => setOpen(e.event_id)} onKeyDown={(k) => k.key === "Enter" && setOpen(e.event_id)}>
                    <td>{when(e.timestamp)}</td><td className="mono small ellipsis" title={e.event_id}>{e.event_id}</td><td>{e.kind}</td><td>{e.model ?? "–"}</td><td>{e.app ?? "–"}</td><td>{e.status ?? "–"}</td>
                    <td>{int(e.input_tokens)} / {int(e.output_tokens)}</td><td>{ms(e.latency_ms)}</td><td>{e.unpriced ? <span className="warn" title="No price for this model: the cost is unknown, not $0">unpriced</span> : usd(e.cost_usd)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {pager(page.data.next_cursor)}
          </>
        )}
      {open && <EventDetail id={open} onClose={() => setOpen(null)} onOpen={setOpen} />}
    </div>
  );
}

function EventDetail({ id, onClose, onOpen }: { id: string; onClose: () => void; onOpen: (id: string) => void }) {
  const e = useQuery({ queryKey: ["event", id], queryFn: () => get<Event>(`/v1/events/${encodeURIComponent(id)}`) });
  const related = useQuery({
    enabled: !!e.data?.correlation_id,
    queryKey: ["events", "correlation", e.data?.correlation_id],
    queryFn: () => get<Page>("/v1/events" + query({ correlation_id: e.data!.correlation_id!, limit: 100 })),
  });
  return (
    <section className="panel detail" role="dialog" aria-label={`Event ${id}`}>
      <div className="page-head"><h2 className="mono">{id}</h2><button className="secondary" onClick={onClose}>Close</button></div>
      {e.isPending ? <Loading what="the event" /> : e.isError ? <ErrorNote error={e.error} /> : (
        <div className="columns">
          <dl>
            {Object.entries(e.data).filter(([k]) => k !== "payload" && k !== "tags" && k !== "enriched_by").map(([k, v]) => (
              <div key={k} className="kv"><dt>{k}</dt><dd>{v == null ? "–" : typeof v === "number" ? String(Number(v.toPrecision(12))) : String(v)}</dd></div>
            ))}
            <div className="kv"><dt>tags</dt><dd><pre>{JSON.stringify(e.data.tags, null, 2)}</pre></dd></div>
          </dl>
          <div>
            <h3>Added by plugins</h3>
            <AddedByPlugins e={e.data} />
            <h3>Original payload</h3>
            <pre className="payload">{JSON.stringify(e.data.payload, null, 2)}</pre>
            {related.data && related.data.events.length > 1 && (
              <>
                <h3>Correlation {e.data.correlation_id}: {related.data.events.length} events, in time order</h3>
                <table aria-label="Events of the same correlation">
                  <thead><tr><th>Time</th><th>Module</th><th>Kind</th><th>Model</th><th>Severity</th><th>Cost</th></tr></thead>
                  <tbody>
                    {inTimeOrder(related.data.events).map((r) => (
                      <tr key={r.event_id} className={r.event_id === id ? "clickable on" : "clickable"} tabIndex={0}
                        onClick={() => onOpen(r.event_id)} onKeyDown={(k) => k.key === "Enter" && onOpen(r.event_id)}>
                        <td>{when(r.timestamp)}</td><td>{r.source_module ?? "–"}</td><td>{r.kind}</td><td>{r.model ?? "–"}</td>
                        <td>{r.severity ?? "–"}</td><td>{r.cost_usd == null ? "–" : usd(r.cost_usd)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </>
            )}
          </div>
        </div>
      )}
    </section>
  );
}

type Added = { plugin: string | null; field: string; value: string };

const TEXT_FIELDS = ["provider", "operation", "app", "environment"] as const;

function shown(e: Event, field: string): string {
  if (field === "cost_usd") return e.cost_usd == null ? "–" : usd(e.cost_usd);
  if (field === "estimated_cost_usd") return e.estimated_cost_usd == null ? "–" : `${usd(e.estimated_cost_usd)} (estimate; the reported cost counts)`;
  if (field.startsWith("tags.")) return String(((e.tags ?? {}) as Record<string, unknown>)[field.slice(5)] ?? "–");
  const v = (TEXT_FIELDS as readonly string[]).includes(field) ? e[field as (typeof TEXT_FIELDS)[number]] : undefined;
  return v == null ? "–" : String(v);
}

/** What each plugin filled in, from the hub's record of it (`enriched_by`). Events stored before
 * the hub kept that record fall back to the difference between the stored event and what the sender
 * sent (plugins only fill what is missing and add tags), without a plugin name. */
export function addedByPlugins(e: Event): Added[] {
  if (e.enriched_by?.length) {
    return e.enriched_by.flatMap((p) => p.fields.map((field) => ({ plugin: p.plugin, field, value: shown(e, field) })));
  }
  const payload = (e.payload ?? {}) as Record<string, unknown>;
  const sent = (k: string) => payload[k] !== undefined || (payload.payload as { data?: Record<string, unknown> } | undefined)?.data?.[k] !== undefined;
  const fields: string[] = ["cost_usd", ...TEXT_FIELDS].filter((k) => e[k as keyof Event] != null && !sent(k));
  const sentTags = (payload.tags ?? {}) as Record<string, unknown>;
  for (const k of Object.keys((e.tags ?? {}) as Record<string, unknown>)) if (sentTags[k] === undefined) fields.push(`tags.${k}`);
  return fields.map((field) => ({ plugin: null, field, value: shown(e, field) }));
}

function AddedByPlugins({ e }: { e: Event }) {
  const added = addedByPlugins(e);
  if (added.length === 0) return <p className="muted small">Nothing: the event is as it was sent.</p>;
  return (
    <table data-testid="added-by-plugins">
      <thead><tr><th>Plugin</th><th>Field</th><th>Value</th></tr></thead>
      <tbody>
        {added.map((a) => (
          <tr key={`${a.plugin}/${a.field}`}>
            <td>{a.plugin ?? <span className="muted" title="Stored before the hub recorded which plugin filled what">a plugin</span>}</td>
            <td className="mono">{a.field}</td>
            <td>{a.value}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Events oldest first (the API lists newest first), ties by id. */
export function inTimeOrder(events: Event[]): Event[] {
  return [...events].sort((a, b) => a.timestamp.localeCompare(b.timestamp) || a.event_id.localeCompare(b.event_id));
}
