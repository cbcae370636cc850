import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, query, type Schemas } from "../api/client";
import { eventsLink, SERIES_DIMENSIONS, SERIES_METRICS, seriesName } from "../analysis";
import { useCursors } from "../components/Pager";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";

type Rules = Schemas["AlertRuleListDto"];
type Rule = Schemas["AlertRuleDto"];
type Page = Schemas["AlertPageDto"];
type Deliveries = Schemas["DeliveryListDto"];
type Delivery = Schemas["DeliveryDto"];
type Silences = Schemas["SilenceListDto"];

const SEVERITIES = ["info", "warning", "critical"];
const severityOptions = SEVERITIES.map((s) => <option key={s}>{s}</option>);

/** What a rule says, in a sentence. */
export function ruleSentence(rule: Record<string, unknown>): string {
  const c = (rule.condition ?? {}) as Record<string, unknown>;
  if (c.kind === "anomaly") {
    return `any anomaly${c.detector ? ` of ${c.detector}` : ""} at ${c.min_severity ?? "warning"} or worse`;
  }
  if (c.kind === "event") {
    const by = c.group_by ? ` per ${c.group_by}` : "";
    const at = c.min_severity ? ` at ${c.min_severity} or worse` : "";
    return `${c.min_count ?? 1} or more ${c.event_kind} events${at} over ${c.window ?? "5m"}${by}`;
  }
  if (c.kind === "composite") {
    const rules = Array.isArray(c.rules) ? c.rules.join(", ") : "";
    return `${c.op === "or" ? "any" : "all"} of ${rules} firing`;
  }
  if (c.kind === "budget") {
    const basis = c.basis === "spent" ? "spend so far this month" : "projected month-end spend";
    const from = c.budget_from as { integration?: string; budget_id?: string } | undefined;
    const budget = from ? `the budget ${from.budget_id} in ${from.integration}` : `$${c.budget_usd}`;
    return `${basis}${c.group_by ? ` per ${c.group_by}` : ""} reaches ${c.percent ?? 100}% of ${budget}`;
  }
  const by = Array.isArray(c.group_by) && c.group_by.length ? ` per ${c.group_by.join(", ")}` : "";
  const held = c.for && c.for !== "0s" && c.for !== "0m" ? `, for ${c.for}` : "";
  return `${c.metric} ${c.op ?? ">"} ${c.value} over ${c.window ?? "5m"}${by}${held}`;
}

/** Where a rule's notices go, as the end of its sentence. */
export function targetsSentence(rule: Record<string, unknown>): string {
  const t = Array.isArray(rule.targets) ? (rule.targets as string[]) : [];
  return t.length ? `; notifies ${t.join(", ")}` : "";
}

/** What an attempt's outcome or a delivery's state reads as. */
export function deliveryState(d: Pick<Delivery, "state" | "attempts" | "next_at">): string {
  if (d.state === "delivered") return d.attempts > 1 ? `delivered after ${d.attempts} attempts` : "delivered";
  if (d.state === "failed") return `given up after ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`;
  if (d.state === "silenced") return "silenced, not sent";
  return d.attempts ? `retrying (${d.attempts} failed)` : "queued";
}

/** The delivery log: every notice to every target, with its attempts; failures first to the eye. */
function DeliveryLog({ names }: { names: Map<number, string> }) {
  const [state, setState] = useState("");
  const q = { state: state || undefined, limit: 50 };
  const log = useQuery({ queryKey: ["deliveries", q], queryFn: () => get<Deliveries>("/v1/alerts/deliveries" + query(q)), refetchInterval: 15_000 });
  return (
    <section className="panel" aria-label="Delivery log">
      <h2>Delivery log</h2>
      <div className="filters">
        <label>Show<select aria-label="Show deliveries" value={state} onChange={(e) => setState(e.target.value)}>
          <option value="">all</option><option value="failed">given up</option><option value="queued">queued or retrying</option><option value="delivered">delivered</option><option value="silenced">silenced</option>
        </select></label>
      </div>
      {log.isPending ? <Loading what="deliveries" /> : log.isError ? <ErrorNote error={log.error} retry={() => log.refetch()} /> :
        log.data.deliveries.length === 0 ? <Empty>Nothing has been sent{state ? " that matches" : ""}. A rule sends to the targets it names.</Empty> : (
          <table>
            <thead><tr><th>Raised</th><th>Target</th><th>Notice</th><th>Rule</th><th>Alert</th><th>Outcome</th><th>Attempts</th></tr></thead>
            <tbody>
              {log.data.deliveries.map((d) => {
                const alert = (d.alert ?? {}) as { summary?: string };
                return (
                  <tr key={d.id} data-testid={`delivery-${d.state}`}>
                    <td>{when(d.created_at)}</td><td>{d.target}</td><td>{d.notice}</td>
                    <td>{names.get(d.rule_id) ?? `rule ${d.rule_id}`}</td><td>{alert.summary ?? `alert ${d.alert_id}`}</td>
                    <td>{deliveryState(d)}{d.next_at ? `, next ${when(d.next_at)}` : ""}{d.last_error ? <div className="muted">{d.last_error}</div> : null}</td>
                    <td>
                      <ol className="attempts">
                        {d.log.map((a, i) => <li key={i}>{when(a.at)}: {a.outcome} in {a.duration_ms} ms{a.error ? ` (${a.error})` : ""}</li>)}
                      </ol>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
    </section>
  );
}

/** "model=gpt-4o, rule!=noisy" as the API's matchers; a part without "=" is refused. */
export function parseMatchers(text: string): { name: string; value: string; op: string }[] {
  return text.split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
    const m = /^([^=!]+?)\s*(!=|=)\s*(.*)$/.exec(p);
    if (!m) throw new Error(`"${p}" is not name=value or name!=value`);
    return { name: m[1].trim(), value: m[3].trim(), op: m[2] };
  });
}

/** A silence's matchers as a person writes them. */
export function matcherText(matchers: unknown): string {
  return Array.isArray(matchers) ? matchers.map((m) => `${m.name}${m.op === "!=" ? "!=" : "="}${m.value}`).join(", ") : "";
}

/** Silences: what they hold back, until when, who made them and why; analysts add and end them. */
function SilenceList({ canWrite }: { canWrite: boolean }) {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["silences"], queryFn: () => get<Silences>("/v1/silences"), refetchInterval: 30_000 });
  const [f, setF] = useState({ matchers: "", duration: "2h", comment: "" });
  const [error, setError] = useState<{ path?: string; message: string } | null>(null);
  const done = () => qc.invalidateQueries({ queryKey: ["silences"] });
  const create = useMutation({
    mutationFn: () => api("POST", "/v1/silences", { matchers: parseMatchers(f.matchers), duration: f.duration.trim(), comment: f.comment }),
    onSuccess: () => { setF({ matchers: "", duration: "2h", comment: "" }); setError(null); done(); },
    onError: (e) => setError(e instanceof ApiError && e.parameter ? { path: e.parameter, message: e.message } : { message: explain(e) }),
  });
  const expire = useMutation({ mutationFn: (id: number) => api("DELETE", `/v1/silences/${id}`), onSuccess: done });
  return (
    <section className="panel" aria-label="Silences">
      <h2>Silences</h2>
      <p className="muted">A silence holds back the notices whose labels (the alert's group, the rule's labels, state, severity) and rule name match it, until it ends. They are kept in the delivery log as silenced.</p>
      {list.isPending ? <Loading what="silences" /> : list.isError ? <ErrorNote error={list.error} retry={() => list.refetch()} /> :
        list.data.silences.length === 0 ? <Empty>Nothing is silenced.</Empty> : (
          <table>
            <thead><tr><th>Matches</th><th>From</th><th>Until</th><th>Why</th><th>By</th>{canWrite && <th />}</tr></thead>
            <tbody>
              {list.data.silences.map((x) => (
                <tr key={x.id} data-testid="silence">
                  <td>{matcherText(x.matchers)}</td><td>{when(x.starts_at)}</td><td>{when(x.ends_at)}</td><td>{x.comment}</td><td>{x.created_by}</td>
                  {canWrite && <td><button className="secondary" onClick={() => expire.mutate(x.id)}>End now</button></td>}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      {canWrite && (
        <form aria-label="New silence" onSubmit={(e) => {
          e.preventDefault();
          try { parseMatchers(f.matchers); } catch (err) { setError({ path: "/matchers", message: (err as Error).message }); return; }
          create.mutate();
        }}>
          <div className="filters">
            <label>Matches<input aria-label="Matches" value={f.matchers} onChange={(e) => setF({ ...f, matchers: e.target.value })} placeholder="model=gpt-4o, rule=Error rate" /></label>
            <label>For<input aria-label="Silence for" value={f.duration} onChange={(e) => setF({ ...f, duration: e.target.value })} placeholder="2h" /></label>
            <label>Why<input aria-label="Why" value={f.comment} onChange={(e) => setF({ ...f, comment: e.target.value })} placeholder="deploying the new prompt" /></label>
          </div>
          {error && <div className="field-error" role="alert">{error.path ? `${error.path}: ` : ""}{error.message}</div>}
          <div><button type="submit" disabled={create.isPending}>Silence</button></div>
        </form>
      )}
    </section>
  );
}

/** Alert rules and the alerts they raised: open ones, past ones, and the rules (analysts write them). */
export function Alerts({ canWrite }: { canWrite: boolean }) {
  const rules = useQuery({ queryKey: ["alert-rules"], queryFn: () => get<Rules>("/v1/alerts/rules"), refetchInterval: 30_000 });
  const names = new Map((rules.data?.rules ?? []).map((r) => [r.id, r.name]));
  return (
    <div>
      <header className="page-head"><h1>Alerts</h1></header>
      <p className="muted">
        Rules are evaluated every minute. An alert is pending while its condition holds, firing once it has held for the
        rule's "for", and resolved when it stops holding. Firing, reminders and resolution are sent to the rule's targets:
        integrations installed from the marketplace (such as webhook). Each attempt is in the delivery log below.
      </p>
      <AlertList title="Open" state="open" names={names} empty="Nothing is pending or firing." canAck={canWrite} />
      <AlertList title="History" state="resolved" names={names} empty="No alert has resolved yet." />
      <DeliveryLog names={names} />
      <SilenceList canWrite={canWrite} />
      <section className="panel" aria-label="Rules">
        <h2>Rules</h2>
        {rules.isPending ? <Loading what="rules" /> : rules.isError ? <ErrorNote error={rules.error} retry={() => rules.refetch()} /> :
          rules.data.rules.length === 0 ? <Empty>No rules yet.{canWrite ? " Add one below." : ""}</Empty> : (
            <RuleTable rules={rules.data.rules} canWrite={canWrite} />
          )}
        {canWrite && <NewRule existing={(rules.data?.rules ?? []).map((r) => ({ name: r.name, rule: r.rule as Record<string, unknown> }))} />}
      </section>
    </div>
  );
}

function AlertList({ title, state, names, empty, canAck = false }: { title: string; state: string; names: Map<number, string>; empty: string; canAck?: boolean }) {
  const { cursor, pager } = useCursors();
  const qc = useQueryClient();
  const ack = useMutation({
    mutationFn: (id: number) => api("POST", `/v1/alerts/${id}/acknowledge`, { comment: prompt("Acknowledge: what are you doing about it?") ?? "" }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["alerts"] }),
  });
  const q = { state, cursor, limit: 50 };
  const page = useQuery({ queryKey: ["alerts", q], queryFn: () => get<Page>("/v1/alerts" + query(q)), refetchInterval: 15_000 });
  return (
    <section className="panel" aria-label={`${title} alerts`}>
      <h2>{title}</h2>
      {page.isPending ? <Loading what="alerts" /> : page.isError ? <ErrorNote error={page.error} retry={() => page.refetch()} /> :
        page.data.alerts.length === 0 ? <Empty>{empty}</Empty> : (
          <>
            {ack.isError && <ErrorNote error={ack.error} />}
            <table>
              <thead><tr><th>State</th><th>Severity</th><th>Rule</th><th>Group</th><th>What holds</th><th>Since</th><th>Fired</th><th>Resolved</th><th>Acknowledged</th></tr></thead>
              <tbody>
                {page.data.alerts.map((a) => (
                  <tr key={a.id} data-testid={`alert-${a.state}`}>
                    <td>{a.state}</td><td><span className={`badge ${a.severity}`}>{a.severity}</span></td>
                    <td>{names.get(a.rule_id) ?? `rule ${a.rule_id}`}</td>
                    <td><Link to={alertEvents(a)} title="The events of this group while the alert was open">{seriesName(a.group as Record<string, unknown>)}</Link></td><td>{a.summary}</td>
                    <td>{when(a.since)}</td><td>{a.fired_at ? when(a.fired_at) : "–"}</td><td>{a.resolved_at ? when(a.resolved_at) : "–"}</td>
                    <td>
                      {a.acknowledged ? <>{a.acknowledged.by}, {when(a.acknowledged.at)}{a.acknowledged.comment ? `: ${a.acknowledged.comment}` : ""}</> : "–"}
                      {canAck && !a.resolved_at && !a.acknowledged && <button className="secondary" onClick={() => ack.mutate(a.id)}>Acknowledge</button>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {pager(page.data.next_cursor)}
          </>
        )}
    </section>
  );
}

function RuleTable({ rules, canWrite }: { rules: Rule[]; canWrite: boolean }) {
  const qc = useQueryClient();
  const act = useMutation({
    mutationFn: ({ method, rule, body }: { method: string; rule: Rule; body?: unknown }) => api(method, `/v1/alerts/rules/${rule.id}`, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["alert-rules"] }),
  });
  return (
    <>
      {act.isError && <ErrorNote error={act.error} />}
      <table>
        <thead><tr><th>Name</th><th>Severity</th><th>When</th><th>Enabled</th><th>Changed</th>{canWrite && <th />}</tr></thead>
        <tbody>
          {rules.map((r) => {
            const spec = r.rule as Record<string, unknown>;
            return (
              <tr key={r.id} data-testid={`rule-${r.name}`}>
                <td>{r.name}</td><td>{String(spec.severity ?? "warning")}</td><td>{ruleSentence(spec)}{targetsSentence(spec)}</td>
                <td>{r.enabled ? "yes" : "no"}</td><td>{when(r.updated_at)} by {r.updated_by}</td>
                {canWrite && (
                  <td>
                    <button className="secondary" onClick={() => act.mutate({ method: "PUT", rule: r, body: { ...spec, enabled: !r.enabled } })}>
                      {r.enabled ? "Disable" : "Enable"}
                    </button>
                    <button className="danger" onClick={() => confirm(`Delete the rule "${r.name}" and its alerts?`) && act.mutate({ method: "DELETE", rule: r })}>Delete</button>
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}

/** The rule the form describes, as the API takes it. */
export function ruleBody(f: Form): Record<string, unknown> {
  const condition: Record<string, unknown> = f.kind === "composite"
    ? { kind: "composite", op: f.join, rules: f.rules }
    : f.kind === "anomaly"
    ? { kind: "anomaly", min_severity: f.minSeverity, ...(f.detector.trim() ? { detector: f.detector.trim() } : {}) }
    : {
      kind: "threshold", metric: f.metric, op: f.op, value: Number(f.value), window: f.window.trim(),
      ...(f.hold.trim() ? { for: f.hold.trim() } : {}), ...(f.groupBy.length ? { group_by: f.groupBy } : {}),
      ...(f.minRequests.trim() ? { min_requests: Number(f.minRequests) } : {}),
    };
  return { name: f.name.trim(), severity: f.severity, condition, ...(f.targets.length ? { targets: f.targets } : {}) };
}

type Form = {
  name: string; severity: string; kind: "threshold" | "anomaly" | "composite"; metric: string; op: string; value: string;
  window: string; hold: string; groupBy: string[]; minRequests: string; detector: string; minSeverity: string;
  targets: string[]; join: "and" | "or"; rules: string[];
};

const EMPTY: Form = {
  name: "", severity: "warning", kind: "threshold", metric: "error_rate", op: ">", value: "0.05", window: "5m",
  hold: "2m", groupBy: [], minRequests: "", detector: "", minSeverity: "warning", targets: [], join: "and", rules: [],
};

function NewRule({ existing }: { existing: { name: string; rule: Record<string, unknown> }[] }) {
  const qc = useQueryClient();
  const [f, setF] = useState<Form>(EMPTY);
  const [error, setError] = useState<{ path?: string; message: string } | null>(null);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF({ ...f, [k]: v });
  const plugins = useQuery({ queryKey: ["plugins"], queryFn: () => get<Schemas["PluginListDto"]>("/v1/plugins") });
  const integrations = (plugins.data?.plugins ?? []).filter((p) => p.kind === "integration" && p.enabled).map((p) => p.name);
  const preview = useMutation({
    mutationFn: () => api<Schemas["RulePreviewDto"]>("POST", "/v1/alerts/rules/preview", ruleBody(f)),
    onError: (e) => setError(e instanceof ApiError && e.parameter ? { path: e.parameter, message: e.message } : { message: explain(e) }),
  });
  const create = useMutation({
    mutationFn: () => api("POST", "/v1/alerts/rules", ruleBody(f)),
    onSuccess: () => { setF(EMPTY); setError(null); qc.invalidateQueries({ queryKey: ["alert-rules"] }); },
    onError: (e) => setError(e instanceof ApiError && e.parameter ? { path: e.parameter, message: e.message } : { message: explain(e) }),
  });
  return (
    <form aria-label="New rule" onSubmit={(e) => { e.preventDefault(); create.mutate(); }}>
      <h3>New rule</h3>
      <div className="filters">
        <label>Name<input aria-label="Name" value={f.name} onChange={(e) => set("name", e.target.value)} placeholder="Error rate per model" /></label>
        <label>Severity
          <select value={f.severity} onChange={(e) => set("severity", e.target.value)}>{severityOptions}</select>
        </label>
        <label>Kind
          <select value={f.kind} onChange={(e) => set("kind", e.target.value as Form["kind"])}><option value="threshold">a metric crosses a value</option><option value="anomaly">a detector finds an anomaly</option><option value="composite">other rules fire together</option></select>
        </label>
      </div>
      {f.kind === "composite" ? (
        <div className="filters">
          <label>When<select aria-label="When" value={f.join} onChange={(e) => set("join", e.target.value as Form["join"])}><option value="and">all of these fire</option><option value="or">any of these fires</option></select></label>
          <fieldset><legend>Rules</legend>
            {existing.filter((r) => (r.rule.condition as Record<string, unknown> | undefined)?.kind !== "composite").map((r) => (
              <label key={r.name} className="inline">
                <input type="checkbox" checked={f.rules.includes(r.name)} onChange={(e) => set("rules", e.target.checked ? [...f.rules, r.name] : f.rules.filter((x) => x !== r.name))} />{r.name}
              </label>
            ))}
          </fieldset>
        </div>
      ) : f.kind === "threshold" ? (
        <div className="filters">
          <label>Metric<select aria-label="Metric" value={f.metric} onChange={(e) => set("metric", e.target.value)}>{SERIES_METRICS.map((m) => <option key={m}>{m}</option>)}</select></label>
          <label>Is<select aria-label="Is" value={f.op} onChange={(e) => set("op", e.target.value)}>{[">", ">=", "<", "<="].map((o) => <option key={o}>{o}</option>)}</select></label>
          <label>Value<input aria-label="Value" value={f.value} onChange={(e) => set("value", e.target.value)} inputMode="decimal" /></label>
          <label>Over<input aria-label="Over" value={f.window} onChange={(e) => set("window", e.target.value)} placeholder="5m" /></label>
          <label>For<input aria-label="For" value={f.hold} onChange={(e) => set("hold", e.target.value)} placeholder="0m" /></label>
          <label>Requests at least<input aria-label="Requests at least" value={f.minRequests} onChange={(e) => set("minRequests", e.target.value)} inputMode="numeric" placeholder="0" /></label>
          <fieldset><legend>Per</legend>
            {SERIES_DIMENSIONS.map((d) => (
              <label key={d} className="inline">
                <input type="checkbox" checked={f.groupBy.includes(d)} onChange={(e) => set("groupBy", e.target.checked ? [...f.groupBy, d] : f.groupBy.filter((x) => x !== d))} />{d}
              </label>
            ))}
          </fieldset>
        </div>
      ) : (
        <div className="filters">
          <label>Detector<input aria-label="Detector" value={f.detector} onChange={(e) => set("detector", e.target.value)} placeholder="any" /></label>
          <label>Severity at least<select aria-label="Severity at least" value={f.minSeverity} onChange={(e) => set("minSeverity", e.target.value)}>{severityOptions}</select></label>
        </div>
      )}
      <fieldset><legend>Notify</legend>
        {integrations.length === 0 ? <span className="muted">No integration is installed: install one (such as webhook) from the marketplace to be notified.</span> :
          integrations.map((t) => (
            <label key={t} className="inline">
              <input type="checkbox" checked={f.targets.includes(t)} onChange={(e) => set("targets", e.target.checked ? [...f.targets, t] : f.targets.filter((x) => x !== t))} />{t}
            </label>
          ))}
      </fieldset>
      {error && <div className="field-error" role="alert">{error.path ? `${error.path}: ` : ""}{error.message}</div>}
      {preview.data && <PreviewNote p={preview.data} />}
      <div>
        <button type="button" className="secondary" disabled={preview.isPending} onClick={() => { setError(null); preview.mutate(); }}>Preview the last 7 days</button>{" "}
        <button type="submit" disabled={create.isPending}>Add rule</button>
      </div>
    </form>
  );
}

/** The events of an alert's group from five minutes before it began to its end (or now). */
export function alertEvents(a: { group: unknown; since: string; resolved_at?: string | null }): string {
  const from = new Date(a.since).getTime() - 5 * 60_000;
  const to = a.resolved_at ? new Date(a.resolved_at).getTime() + 60_000 : Date.now() + 60_000;
  return eventsLink((a.group ?? {}) as Record<string, unknown>, from, to);
}

/** What the rule form's preview found: how often, and the newest times. */
function PreviewNote({ p }: { p: Schemas["RulePreviewDto"] }) {
  return (
    <div className="panel" data-testid="rule-preview">
      <strong>{p.supported ? `It ${p.note.replace(/^it /, "")}` : p.note}</strong>
      {p.supported && <span className="muted"> (replayed every {p.every} over {p.groups} group{p.groups === 1 ? "" : "s"})</span>}
      {p.episodes.length > 0 && (
        <ul>{p.episodes.map((e) => (
          <li key={e.fired_at + seriesName(e.group as Record<string, unknown>)}>
            {seriesName(e.group as Record<string, unknown>)}: {when(e.fired_at)}{e.resolved_at ? ` to ${when(e.resolved_at)}` : ", still firing"}
          </li>
        ))}</ul>
      )}
    </div>
  );
}
