import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, type Schemas } from "../api/client";
import { ErrorNote, Loading } from "../components/States";
import { IngestBus } from "../components/IngestBus";

type Settings = Schemas["SettingsDto"];
type Sso = {
  enabled: boolean; issuer?: string; client_id?: string; redirect_url?: string; scopes?: string[];
  groups_claim?: string; domain_roles?: string[]; group_roles?: string[]; client_secret_set?: boolean;
};
type Retention = Schemas["RetentionMs"];
type Rules = Schemas["TenantSsoRulesDto"];
type Rule = Schemas["TenantRuleDto"];
type RetentionView = Schemas["RetentionDto"];

const keep = (ms: number | null) => (ms == null ? "forever" : ms % 86_400_000 === 0 ? `${ms / 86_400_000} days` : `${Math.round(ms / 3_600_000)} hours`);

/** Single sign-on and retention: the operator's settings, shown so tenants know what holds. */
export function SettingsPage() {
  const s = useQuery({ queryKey: ["settings"], queryFn: () => get<Settings>("/v1/settings") });
  if (s.isPending) return <Loading what="settings" />;
  if (s.isError) return <ErrorNote error={s.error} retry={() => s.refetch()} />;
  const sso = s.data.sso as unknown as Sso;
  return (
    <div>
      <header className="page-head"><h1>Sign-in and retention</h1></header>
      <p className="muted">
        The identity provider for single sign-on is the hub operator's (flags, environment variables or hub.toml; the
        audit log records every change between two starts); who gets which role here with it, this tenant's admins
        decide. Retention is the operator's maximum, which this tenant may shorten.
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
      <SsoRules enabled={sso.enabled} />
      <RetentionForm />
      <section className="panel" aria-label="Marketplace">
        <h2>Marketplace</h2>
        <p>The catalog is {s.data.public_catalog ? "public: other hubs may install from it" : "for signed-in people and keys of this hub"}.</p>
      </section>
      <IngestBus />
    </div>
  );
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const KINDS = [
  ["raw_ms", "Raw events (the event explorer)"],
  ["minute_ms", "Per-minute rollups"],
  ["hour_ms", "Per-hour rollups"],
  ["day_ms", "Per-day rollups (long ranges on the dashboard)"],
] as const;
type Kind = (typeof KINDS)[number][0];

const asDays = (ms: number | null | undefined) => (ms == null ? "" : String(Number((ms / DAY).toFixed(4))));

/** The form's days back into the API's milliseconds, or the message for each field that cannot be
 * sent: not a number, under an hour, or longer than the operator keeps. Blank is "as the hub". */
export function retentionFromForm(days: Record<Kind, string>, operator: Retention): { value: Retention; errors: Partial<Record<Kind, string>> } {
  const value: Retention = {};
  const errors: Partial<Record<Kind, string>> = {};
  for (const [k] of KINDS) {
    const text = days[k].trim();
    if (text === "") { value[k] = null; continue; }
    const d = Number(text);
    if (!Number.isFinite(d) || d <= 0) { errors[k] = "Enter a number of days, or leave it blank for as long as the hub keeps them."; continue; }
    const ms = Math.round(d * DAY);
    const most = operator[k];
    if (ms < HOUR) errors[k] = "Keep at least an hour (0.05 days).";
    else if (most != null && ms > most) errors[k] = `This hub keeps at most ${keep(most)}.`;
    else value[k] = ms;
  }
  return { value, errors };
}

/** How long this tenant keeps each resolution: the operator's maximum, the tenant's own choice
 * (admins set it here), and what applies. */
function RetentionForm() {
  const doc = useSettingsDoc<RetentionView, Retention, Record<Kind, string>>("/v1/settings/retention");
  const { query: r, errors, setErrors } = doc;
  if (r.isPending) return <Loading what="retention" />;
  if (r.isError) return <ErrorNote error={r.error} retry={() => r.refetch()} />;
  const shown = doc.draft ?? (Object.fromEntries(KINDS.map(([k]) => [k, asDays(r.data.tenant[k])])) as Record<Kind, string>);
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const { value, errors } = retentionFromForm(shown, r.data.operator);
    doc.submit(errors, value);
  };
  return (
    <form className="panel" aria-label="Retention" onSubmit={submit} noValidate>
      <h2>Retention</h2>
      <table>
        <thead><tr><th>Data</th><th>The hub keeps at most</th><th>This tenant keeps (days; blank: as the hub)</th><th>Applies</th></tr></thead>
        <tbody>
          {KINDS.map(([k, label]) => (
            <tr key={k}>
              <td>{label}</td>
              <td>{keep(r.data.operator[k] ?? null)}</td>
              <td>
                <input
                  aria-label={`${label}: days kept`} inputMode="decimal" value={shown[k]} placeholder="as the hub"
                  aria-invalid={!!errors[k]} onChange={(e) => { setErrors({ ...errors, [k]: undefined }); doc.setDraft({ ...shown, [k]: e.target.value }); }}
                />
                {errors[k] && <div className="field-error">{errors[k]}</div>}
              </td>
              <td data-testid={`retention-${k}`}>{keep(r.data.effective[k] ?? null)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small">Shortening deletes older data at the next retention run; it cannot be brought back.</p>
      {doc.footer("Save retention")}
    </form>
  );
}

const LISTS = [
  ["domain_roles", "Email domain", "example.com"],
  ["group_roles", "Identity-provider group", "data-team"],
] as const;
type List = (typeof LISTS)[number][0];
const ROLES = ["viewer", "analyst", "admin"] as const;

/** Messages by path (`domain_roles[0].pattern`) for rules that cannot be sent. */
export function ruleErrors(rules: Rules): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const [list] of LISTS) {
    const seen = new Set<string>();
    (rules[list] ?? []).forEach((r, i) => {
      const p = r.pattern.trim().toLowerCase();
      const at = `${list}[${i}].pattern`;
      if (list === "domain_roles" && !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(p)) errors[at] = "An email domain such as example.com (without the @).";
      else if (list === "group_roles" && p === "") errors[at] = "The group's name as the identity provider sends it.";
      else if (seen.has(p)) errors[at] = "This list has a rule for it already.";
      seen.add(p);
    });
  }
  return errors;
}

/** This tenant's own single sign-on rules: who gets which role here when they sign in. */
function SsoRules({ enabled }: { enabled: boolean }) {
  const doc = useSettingsDoc<Rules, Rules, Rules>("/v1/settings/sso-rules");
  const { query: q, errors } = doc;
  if (q.isPending) return <Loading what="single sign-on rules" />;
  if (q.isError) return <ErrorNote error={q.error} retry={() => q.refetch()} />;
  const rules: Rules = doc.draft ?? q.data;
  const change = (list: List, f: (rows: Rule[]) => Rule[]) => { doc.setErrors({}); doc.setDraft({ ...rules, [list]: f([...(rules[list] ?? [])]) }); };
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    doc.submit(ruleErrors(rules), rules);
  };
  return (
    <form className="panel" aria-label="Single sign-on rules of this tenant" onSubmit={submit} noValidate>
      <h2>Who gets in with single sign-on</h2>
      <p className="muted small">
        People who sign in with the hub's identity provider get a role in this tenant when their email domain or one of
        their groups has a rule here (besides the operator's rules; the higher role wins). Roles change at each person's
        next sign-in.{enabled ? "" : " Single sign-on is off on this hub: the rules apply once the operator turns it on."}
      </p>
      {LISTS.map(([list, label, example]) => (
        <fieldset key={list}>
          <legend>{label}</legend>
          {(rules[list] ?? []).length === 0 && <p className="muted small">No rules.</p>}
          {(rules[list] ?? []).map((r, i) => (
            <div className="row" key={i}>
              <label>{label} {i + 1}
                <input value={r.pattern} placeholder={example} aria-invalid={!!errors[`${list}[${i}].pattern`]}
                  onChange={(e) => change(list, (rows) => { rows[i] = { ...rows[i], pattern: e.target.value }; return rows; })} />
              </label>
              <label>Role
                <select value={r.role} onChange={(e) => change(list, (rows) => { rows[i] = { ...rows[i], role: e.target.value }; return rows; })}>
                  {ROLES.map((x) => <option key={x}>{x}</option>)}
                </select>
              </label>
              <button type="button" className="secondary" onClick={() => change(list, (rows) => rows.filter((_, j) => j !== i))}>Remove</button>
              {(errors[`${list}[${i}].pattern`] || errors[`${list}[${i}].role`]) && (
                <div className="field-error">{errors[`${list}[${i}].pattern`] ?? errors[`${list}[${i}].role`]}</div>
              )}
            </div>
          ))}
          <button type="button" className="secondary" onClick={() => change(list, (rows) => [...rows, { pattern: "", role: "viewer" }])}>Add {label.toLowerCase()} rule</button>
        </fieldset>
      ))}
      {doc.footer("Save rules")}
    </form>
  );
}

/** One settings document of this tenant (at `path`): read, edited as a draft, checked in the
 * browser, saved with PUT. A field the hub refuses shows its message next to the field (by the
 * error's parameter); any other failure shows above the save button. */
function useSettingsDoc<View, Body, Draft>(path: string) {
  const qc = useQueryClient();
  const query = useQuery({ queryKey: [path], queryFn: () => get<View>(path) });
  const [draft, setDraft] = useState<Draft | null>(null);
  const [errors, setErrors] = useState<Record<string, string | undefined>>({});
  const save = useMutation({
    mutationFn: (body: Body) => api<View>("PUT", path, body),
    onSuccess: (v) => { qc.setQueryData([path], v); setDraft(null); },
    onError: (e) => { if (e instanceof ApiError && e.parameter) setErrors({ [e.parameter]: e.message }); },
  });
  /** Shows `found` (the browser's own check) and sends `body` only when it found nothing. */
  const submit = (found: Record<string, string | undefined>, body: Body) => {
    setErrors(found);
    if (Object.keys(found).length === 0) save.mutate(body);
  };
  const footer = (label: string) => (
    <>
      {save.isError && !(save.error instanceof ApiError && save.error.parameter) && <div className="state error" role="alert">{explain(save.error)}</div>}
      <div className="row">
        <button type="submit" disabled={save.isPending || draft === null}>{save.isPending ? "Saving…" : label}</button>
        {save.isSuccess && draft === null && <span className="muted small" role="status">Saved.</span>}
      </div>
    </>
  );
  return { query, draft, setDraft, errors, setErrors, submit, footer };
}
