import { useQuery } from "@tanstack/react-query";
import { get, type Schemas } from "../api/client";
import { ErrorNote, Loading } from "../components/States";

type Settings = Schemas["SettingsDto"];
type Sso = {
  enabled: boolean; issuer?: string; client_id?: string; redirect_url?: string; scopes?: string[];
  groups_claim?: string; domain_roles?: string[]; group_roles?: string[]; client_secret_set?: boolean;
};
type Retention = { raw_ms: number | null; minute_ms: number | null; hour_ms: number | null; day_ms: number | null };

const keep = (ms: number | null) => (ms == null ? "forever" : ms % 86_400_000 === 0 ? `${ms / 86_400_000} days` : `${Math.round(ms / 3_600_000)} hours`);

/** Single sign-on and retention: the operator's settings, shown so tenants know what holds. */
export function SettingsPage() {
  const s = useQuery({ queryKey: ["settings"], queryFn: () => get<Settings>("/v1/settings") });
  if (s.isPending) return <Loading what="settings" />;
  if (s.isError) return <ErrorNote error={s.error} retry={() => s.refetch()} />;
  const sso = s.data.sso as unknown as Sso;
  const r = s.data.retention as unknown as Retention | null;
  return (
    <div>
      <header className="page-head"><h1>Sign-in and retention</h1></header>
      <p className="muted">
        The hub's operator sets these with flags, environment variables or hub.toml; the audit log records
        every change between two starts. Ask them to change one.
      </p>
      <section className="panel" aria-label="Single sign-on">
        <h2>Single sign-on {sso.enabled ? <span className="badge ok">on</span> : <span className="badge">off</span>}</h2>
        {sso.enabled ? (
          <dl className="facts">
            <dt>Identity provider</dt><dd className="mono">{sso.issuer}</dd>
            <dt>Client</dt><dd className="mono">{sso.client_id} {sso.client_secret_set ? "(with a secret)" : "(public client)"}</dd>
            <dt>Returns to</dt><dd className="mono">{sso.redirect_url}</dd>
            <dt>Scopes</dt><dd>openid {sso.scopes?.join(" ")}</dd>
            <dt>Roles by email domain</dt><dd>{sso.domain_roles?.length ? <ul>{sso.domain_roles.map((x) => <li key={x} className="mono">{x}</li>)}</ul> : "none"}</dd>
            <dt>Roles by group ({sso.groups_claim})</dt><dd>{sso.group_roles?.length ? <ul>{sso.group_roles.map((x) => <li key={x} className="mono">{x}</li>)}</ul> : "none"}</dd>
          </dl>
        ) : (
          <p>People sign in with email and password. The operator turns single sign-on on with <code>--oidc-issuer</code> and its companions.</p>
        )}
      </section>
      <section className="panel" aria-label="Retention">
        <h2>Retention</h2>
        {r ? (
          <table>
            <thead><tr><th>Data</th><th>Kept</th></tr></thead>
            <tbody>
              <tr><td>Raw events (the event explorer)</td><td data-testid="retention-raw">{keep(r.raw_ms)}</td></tr>
              <tr><td>Per-minute rollups</td><td>{keep(r.minute_ms)}</td></tr>
              <tr><td>Per-hour rollups</td><td>{keep(r.hour_ms)}</td></tr>
              <tr><td>Per-day rollups (long ranges on the dashboard)</td><td>{keep(r.day_ms)}</td></tr>
            </tbody>
          </table>
        ) : <p className="muted">Not reported by this hub.</p>}
      </section>
      <section className="panel" aria-label="Marketplace">
        <h2>Marketplace</h2>
        <p>The catalog is {s.data.public_catalog ? "public: other hubs may install from it" : "for signed-in people and keys of this hub"}.</p>
      </section>
    </div>
  );
}
