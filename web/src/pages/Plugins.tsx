import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, type Schemas } from "../api/client";
import { atLeast, useMe } from "../auth";
import { fieldOf, SchemaForm, type JsonSchema } from "../components/SchemaForm";
import { Reprice } from "../components/Reprice";
import { SeriesFields } from "../components/SeriesFields";
import { seriesOverride } from "../analysis";
import { Empty, ErrorNote, Loading } from "../components/States";
import { int, ms, when } from "../format";

type Plugin = Schemas["PluginDto"];
type List = Schemas["PluginListDto"];
type Budget = Schemas["BudgetDto"];

/** What the tenant's plugin CPU budget means for its events, in a sentence (none while all is well). */
export function budgetNote(b: Budget): { text: string; warn: boolean } | undefined {
  if (!b.cpu_ms_per_second) return undefined;
  const per = `Your plugins may use ${int(b.cpu_ms_per_second)} ms of CPU per second.`;
  if (b.throttled_now) {
    return {
      warn: true,
      text: `${per} They are over it now: new events wait before they are stored, and requests may be refused with 429 until they catch up. Disable or reconfigure the plugin with the most CPU per call; a plugin over budget for long is disabled by the hub.`,
    };
  }
  if (b.throttled_s > 0) {
    return { warn: false, text: `${per} Your events waited ${b.throttled_s.toFixed(1)} s for it since the hub started.` };
  }
  return undefined;
}

export function Plugins() {
  const me = useMe();
  const admin = atLeast(me.data, "admin");
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["plugins"], queryFn: () => get<List>("/v1/plugins"), refetchInterval: 15_000 });
  const change = useMutation({
    mutationFn: ({ method, path, body }: { method: string; path: string; body?: unknown }) => api(method, path, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["plugins"] }),
  });
  if (list.isPending) return <Loading what="plugins" />;
  if (list.isError) return <ErrorNote error={list.error} retry={() => list.refetch()} />;
  const plugins = list.data.plugins;
  const budget = budgetNote(list.data.budget);
  const enrichers = plugins.filter((p) => p.kind === "enricher").map((p) => p.name);
  const move = (name: string, by: number) => {
    const order = [...enrichers];
    const i = order.indexOf(name);
    const j = i + by;
    if (j < 0 || j >= order.length) return;
    [order[i], order[j]] = [order[j], order[i]];
    change.mutate({ method: "PUT", path: "/v1/plugins", body: { plugins: order.map((n) => ({ name: n })) } });
  };
  return (
    <div>
      <header className="page-head">
        <h1>Plugins</h1>
        <Link to="/marketplace" className="button secondary">Browse the marketplace</Link>
      </header>
      {change.isError && <ErrorNote error={change.error} />}
      {budget && <div className={budget.warn ? "state error" : "muted small"} role={budget.warn ? "alert" : undefined}>{budget.text}</div>}
      {plugins.length === 0 ? (
        <Empty>No plugins yet. Install one from the marketplace.</Empty>
      ) : (
        <ol className="plugin-list">
          {plugins.map((p) => (
            <PluginRow key={p.name} p={p} admin={admin} busy={change.isPending}
              onToggle={() => change.mutate({ method: "PUT", path: `/v1/plugins/${p.name}`, body: { enabled: !p.enabled } })}
              onMove={p.kind === "enricher" ? (by) => move(p.name, by) : undefined} />
          ))}
        </ol>
      )}
    </div>
  );
}

function PluginRow({ p, admin, busy, onToggle, onMove }: {
  p: Plugin; admin: boolean; busy: boolean; onToggle: () => void; onMove?: (by: number) => void;
}) {
  const [open, setOpen] = useState<"" | "config" | "saved" | "reprice" | "grants" | "version" | "remove" | "runs">("");
  const enricher = p.kind === "enricher";
  const h = p.health;
  return (
    <li className="panel plugin" data-testid={`plugin-${p.name}`}>
      <div className="page-head">
        <div>
          <h2>{p.name} <span className="muted">{p.version}</span> {p.enabled ? <span className="badge ok">enabled</span> : <span className="badge">disabled</span>}</h2>
          <div className="muted small">{p.kind} · position {p.position}</div>
        </div>
        {admin && (
          <div className="toolbar">
            {onMove && <button className="secondary" aria-label={`Move ${p.name} up`} disabled={busy} onClick={() => onMove(-1)}>↑</button>}
            {onMove && <button className="secondary" aria-label={`Move ${p.name} down`} disabled={busy} onClick={() => onMove(1)}>↓</button>}
            <button className="secondary" disabled={busy} onClick={onToggle}>{p.enabled ? "Disable" : "Enable"}</button>
            <button className="secondary" onClick={() => setOpen(open === "config" ? "" : "config")}>Configure</button>
            {enricher && <button className="secondary" onClick={() => setOpen(open === "reprice" ? "" : "reprice")}>Re-price history</button>}
            {(p.capabilities.kv || p.capabilities.http.length > 0) && (
              <button className="secondary" onClick={() => setOpen(open === "grants" ? "" : "grants")}>Capabilities</button>
            )}
            {(p.series || p.kind === "integration") && (
              <button className="secondary" onClick={() => setOpen(open === "runs" ? "" : "runs")}>{p.kind === "integration" ? "Syncs" : "Runs"}</button>
            )}
            <button className="secondary" onClick={() => setOpen(open === "version" ? "" : "version")}>Version</button>
            <button className="secondary danger" onClick={() => setOpen(open === "remove" ? "" : "remove")}>Uninstall</button>
          </div>
        )}
      </div>
      <p>{p.description}</p>
      <dl className="health">
        <dt>Calls</dt><dd>{int(h.calls)}</dd>
        <dt>Failures</dt><dd>{int(h.failures)}</dd>
        <dt>p50 / p99</dt><dd>{ms(h.p50_ms)} / {ms(h.p99_ms)}</dd>
        <dt>CPU per call</dt><dd>{ms(h.cpu_ms_per_call)}</dd>
        <dt>Granted</dt><dd>{[p.grants.kv ? "kv" : "", ...(p.grants.http ?? []).map((x) => "http:" + x)].filter(Boolean).join(", ") || "nothing"}</dd>
      </dl>
      {p.series && <div className="muted small" data-testid="watches">{watches(p.series as Record<string, unknown>, p.kind)}</div>}
      {h.disabled_reason && <div className="state error">Disabled by the hub: {h.disabled_reason}</div>}
      {h.last_error && <div className="muted small">Last error: {h.last_error}</div>}
      {open === "config" && <Configure p={p} onDone={() => setOpen(enricher ? "saved" : "")} />}
      {(open === "saved" || open === "reprice") && <Reprice saved={open === "saved"} />}
      {open === "grants" && <Grants p={p} onDone={() => setOpen("")} />}
      {open === "version" && <Version p={p} onDone={() => setOpen("")} />}
      {open === "runs" && <Runs p={p} />}
      {open === "remove" && <Remove p={p} onDone={() => setOpen("")} />}
    </li>
  );
}

function Configure({ p, onDone }: { p: Plugin; onDone: () => void }) {
  const qc = useQueryClient();
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  // A detector's or forecaster's series ride in its configuration under "series" (the hub's, not
  // the plugin's): only what the person changes is sent, over the tenant's earlier choices.
  const { series: earlier, ...own } = (p.config ?? {}) as Record<string, unknown>;
  const resolved = (p.series ?? undefined) as Record<string, unknown> | undefined;
  const [series, setSeries] = useState<Record<string, unknown>>(resolved ?? {});
  const save = useMutation({
    mutationFn: (config: Record<string, unknown>) => api("PUT", `/v1/plugins/${p.name}`, { config }),
    onSuccess: async () => { await qc.invalidateQueries({ queryKey: ["plugins"] }); onDone(); },
    onError: (e) => {
      const param = e instanceof ApiError ? e.parameter : undefined;
      const f = fieldOf(param);
      setServerErrors(f && f !== "config" ? { [f]: f === "series" ? `${param?.replace(/^config\//, "")}: ${(e as Error).message}` : (e as Error).message } : {});
    },
  });
  const withSeries = (c: Record<string, unknown>) => {
    const o = resolved && seriesOverride(resolved, earlier as Record<string, unknown> | undefined, series);
    return o ? { ...c, series: o } : c;
  };
  return (
    <section aria-label={`Configure ${p.name}`}>
      <SchemaForm schema={p.config_schema as JsonSchema} initial={own}
        serverErrors={serverErrors} busy={save.isPending} submitLabel="Save configuration" onSubmit={(c) => save.mutate(withSeries(c))}>
        {resolved && <SeriesFields value={series} onChange={setSeries} forecaster={p.kind === "forecaster"} error={serverErrors.series} />}
        {resolved && earlier !== undefined && (
          <button type="button" className="link" onClick={() => save.mutate(own)}>Back to the plugin&apos;s own series settings</button>
        )}
        {save.isError && <div className="state error" role="alert">{explain(save.error)}</div>}
      </SchemaForm>
    </section>
  );
}

function Version({ p, onDone }: { p: Plugin; onDone: () => void }) {
  const qc = useQueryClient();
  const detail = useQuery({ queryKey: ["package", p.name], queryFn: () => get<Schemas["PackageDetailDto"]>(`/v1/marketplace/packages/${p.name}`) });
  const [version, setVersion] = useState(p.version);
  const save = useMutation({
    mutationFn: () => api("PUT", `/v1/plugins/${p.name}`, { version }),
    onSuccess: async () => { await qc.invalidateQueries({ queryKey: ["plugins"] }); onDone(); },
  });
  if (detail.isPending) return <Loading what="versions" />;
  if (detail.isError) return <ErrorNote error={detail.error} />;
  return (
    <section aria-label={`Version of ${p.name}`} className="row">
      <label>
        Move to version
        <select value={version} onChange={(e) => setVersion(e.target.value)}>
          {detail.data.versions.filter((v) => !v.yanked || v.version === p.version).map((v) => (
            <option key={v.version} value={v.version}>{v.version}{v.version === p.version ? " (installed)" : ""}</option>
          ))}
        </select>
      </label>
      <button disabled={version === p.version || save.isPending} onClick={() => save.mutate()}>Apply</button>
      {save.isError && <div className="state error" role="alert">{explain(save.error)}</div>}
    </section>
  );
}

function Remove({ p, onDone }: { p: Plugin; onDone: () => void }) {
  const qc = useQueryClient();
  const [purge, setPurge] = useState(false);
  const remove = useMutation({
    mutationFn: () => api("DELETE", `/v1/plugins/${p.name}${purge ? "?purge_kv=true" : ""}`),
    onSuccess: async () => { await qc.invalidateQueries({ queryKey: ["plugins"] }); onDone(); },
  });
  return (
    <section aria-label={`Uninstall ${p.name}`} className="row">
      <label className="inline"><input type="checkbox" checked={purge} onChange={(e) => setPurge(e.target.checked)} /> Also delete what it stored (cannot be undone)</label>
      <button className="danger" disabled={remove.isPending} onClick={() => remove.mutate()}>Uninstall {p.name}</button>
      {remove.isError && <div className="state error" role="alert">{explain(remove.error)}</div>}
    </section>
  );
}

/** The capabilities the plugin asks for, granted or not, changed only with an explicit confirmation. */
function Grants({ p, onDone }: { p: Plugin; onDone: () => void }) {
  const qc = useQueryClient();
  const asked = p.capabilities;
  const [kv, setKv] = useState(p.grants.kv ?? false);
  const [hosts, setHosts] = useState((p.grants.http ?? []).join(", "));
  const [confirmed, setConfirmed] = useState(false);
  const save = useMutation({
    mutationFn: () => api("PUT", `/v1/plugins/${p.name}`, { grants: { kv, http: hosts.split(",").map((h) => h.trim()).filter(Boolean) } }),
    onSuccess: async () => { await qc.invalidateQueries({ queryKey: ["plugins"] }); onDone(); },
  });
  return (
    <form className="grants" aria-label={`Capabilities of ${p.name}`} onSubmit={(e) => { e.preventDefault(); if (confirmed) save.mutate(); }}>
      {asked.kv && <label className="inline"><input type="checkbox" checked={kv} onChange={(e) => setKv(e.target.checked)} /> Key-value store</label>}
      {asked.http.length > 0 && (
        <label>
          HTTP hosts {asked.http.includes("*") ? "(you choose)" : `(it asks for ${asked.http.join(", ")})`}
          <input value={hosts} onChange={(e) => setHosts(e.target.value)} placeholder="host or host:port, comma-separated" />
        </label>
      )}
      <label className="inline"><input type="checkbox" checked={confirmed} onChange={(e) => setConfirmed(e.target.checked)} /> I grant exactly these to {p.name} for this tenant</label>
      <button type="submit" disabled={!confirmed || save.isPending}>Save capabilities</button>
      {save.isError && <div className="state error" role="alert">{explain(save.error)}</div>}
    </form>
  );
}

/** What a detector or forecaster watches, in a sentence. */
export function watches(s: Record<string, unknown>, kind: string): string {
  const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);
  const per = list(s.group_by).length ? ` per ${list(s.group_by).join(" and ")}` : " of all traffic";
  const ahead = kind === "forecaster" && s.horizon ? `, ${s.horizon} points ahead` : "";
  return `Watches ${list(s.metrics).join(", ")}${per}, a point every ${s.step} over ${s.history} (at most ${s.max_series} series); runs every ${s.every}${ahead}.`;
}

/** A detector's or forecaster's recent runs (an integration's syncs): when, how it went, what it found. */
function Runs({ p }: { p: Plugin }) {
  const sync = p.kind === "integration";
  const runs = useQuery({ queryKey: ["runs", p.name], queryFn: () => get<Schemas["RunListDto"]>(`/v1/plugins/${p.name}/runs`), refetchInterval: 15_000 });
  if (runs.isPending) return <Loading what="runs" />;
  if (runs.isError) return <ErrorNote error={runs.error} />;
  if (runs.data.runs.length === 0) return <Empty>{sync ? "No syncs yet: an integration syncs when its manifest sets refresh-interval-s." : "No runs yet: the first comes after its first period ends."}</Empty>;
  return (
    <table aria-label={`Runs of ${p.name}`}>
      <thead><tr><th>{sync ? "Period" : "Period ending"}</th><th>Outcome</th><th>{sync ? "Events answered" : "Series"}</th><th>{sync ? "Stored" : p.kind === "forecaster" ? "Forecasts" : "Anomalies"}</th><th>Took</th><th>Message</th></tr></thead>
      <tbody>
        {runs.data.runs.slice(0, 20).map((r) => (
          <tr key={r.period}>
            <td>{when(r.period)}</td><td>{r.outcome ?? "running"}</td><td>{int(r.series)}</td><td>{int(r.found)}</td>
            <td>{r.finished_at ? ms(new Date(r.finished_at).getTime() - new Date(r.started_at).getTime()) : "–"}</td><td>{r.message ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
