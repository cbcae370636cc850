import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, query, type Schemas } from "../api/client";
import { atLeast, useMe } from "../auth";
import { fieldOf, SchemaForm, type JsonSchema } from "../components/SchemaForm";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";

type PackageList = Schemas["PackageListDto"];
type Detail = Schemas["PackageDetailDto"];

export function Marketplace() {
  const [q, setQ] = useState("");
  const [kind, setKind] = useState("");
  const list = useQuery({
    queryKey: ["packages", q, kind],
    queryFn: () => get<PackageList>("/v1/marketplace/packages" + query({ q, kind })),
  });
  return (
    <div>
      <header className="page-head">
        <h1>Marketplace</h1>
        <div className="toolbar">
          <input type="search" aria-label="Search plugins" placeholder="Search plugins" value={q} onChange={(e) => setQ(e.target.value)} />
          <select aria-label="Kind" value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="">All kinds</option>
            <option value="enricher">Enrichers</option>
            <option value="detector">Detectors</option>
            <option value="forecaster">Forecasters</option>
            <option value="integration">Integrations</option>
          </select>
        </div>
      </header>
      {list.isPending ? (
        <Loading what="the catalog" />
      ) : list.isError ? (
        <ErrorNote error={list.error} retry={() => list.refetch()} />
      ) : list.data.packages.length === 0 ? (
        <Empty>No plugin matches. Try other words, or publish one (see the plugin guide).</Empty>
      ) : (
        <ul className="cards">
          {list.data.packages.map((p) => (
            <li key={p.name} className="card">
              <Link to={`/marketplace/${p.name}`}><h2>{p.name}</h2></Link>
              <div className="muted small">{p.kind} · {p.latest_version ?? "all yanked"} · by {p.publisher}</div>
              <p>{p.description}</p>
              <div className="muted small">{p.installs} installs · {p.downloads} downloads</div>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function PackagePage() {
  const { name = "" } = useParams();
  const me = useMe();
  const d = useQuery({ queryKey: ["package", name], queryFn: () => get<Detail>(`/v1/marketplace/packages/${encodeURIComponent(name)}`) });
  const [installing, setInstalling] = useState(false);
  if (d.isPending) return <Loading what={name} />;
  if (d.isError) return <ErrorNote error={d.error} retry={() => d.refetch()} />;
  const p = d.data;
  return (
    <div>
      <header className="page-head">
        <h1>{p.name} <span className="muted">{p.version}</span></h1>
        {atLeast(me.data, "admin") && !installing && (
          <button onClick={() => setInstalling(true)}>Install…</button>
        )}
      </header>
      <p>{p.description}</p>
      {installing && <InstallFlow detail={p} onDone={() => setInstalling(false)} />}
      <div className="columns">
        <article className="panel readme" dangerouslySetInnerHTML={{ __html: p.readme_html }} />
        <aside className="panel facts">
          <dl>
            <dt>Publisher</dt><dd>{p.publisher}</dd>
            <dt>Kind</dt><dd>{p.kind} ({p.world})</dd>
            <dt>License</dt><dd>{p.license ?? "–"}</dd>
            <dt>Capabilities</dt>
            <dd>
              {!p.capabilities.kv && p.capabilities.http.length === 0 && !p.capabilities.tags ? "none" : (
                <ul>
                  {p.capabilities.kv && <li>key-value store</li>}
                  {p.capabilities.http.map((h) => <li key={h}>HTTP to {h === "*" ? "hosts you choose" : h}</li>)}
                  {p.capabilities.tags && <li>reads event tags</li>}
                </ul>
              )}
            </dd>
            <dt>Limits</dt><dd>{p.limits.deadline_ms ?? 50} ms per call, {p.limits.memory_mib ?? 64} MiB</dd>
            <dt>Digest</dt><dd className="mono small" title={p.digest}>{p.digest.slice(0, 16)}…</dd>
            <dt>Signed by key</dt><dd className="mono small">{p.key_id}</dd>
            <dt>Installs</dt><dd>{p.installs} · {p.downloads} downloads</dd>
          </dl>
          <h3>Versions</h3>
          <ul className="versions">
            {p.versions.map((v) => (
              <li key={v.version}>
                <strong>{v.version}</strong> <span className="muted small">{when(v.published_at)}</span>
                {v.yanked && <span className="badge warn" title={v.yanked_reason ?? ""}>yanked</span>}
                {v.changelog && <div className="small">{v.changelog}</div>}
              </li>
            ))}
          </ul>
        </aside>
      </div>
    </div>
  );
}

/** Install in one flow: configuration from the schema, then the capabilities, confirmed. */
function InstallFlow({ detail, onDone }: { detail: Detail; onDone: () => void }) {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [version, setVersion] = useState(detail.version);
  const asked = detail.capabilities;
  const [grantKv, setGrantKv] = useState(false);
  const [hosts, setHosts] = useState(asked.http.filter((h) => h !== "*").join(", "));
  const [confirmed, setConfirmed] = useState(asked.http.length === 0 && !asked.kv);
  const [serverErrors, setServerErrors] = useState<Record<string, string>>({});
  const install = useMutation({
    mutationFn: (config: Record<string, unknown>) =>
      api("POST", "/v1/plugins", {
        package: detail.name,
        version,
        config,
        grants: { kv: grantKv, http: hosts.split(",").map((h) => h.trim()).filter(Boolean) },
      }),
    onSuccess: async () => {
      await qc.invalidateQueries();
      navigate("/plugins");
    },
    onError: (e) => {
      const f = e instanceof ApiError ? fieldOf(e.parameter) : undefined;
      if (f && f !== "config" && f !== "grants") setServerErrors({ [f]: e.message });
      else setServerErrors({});
    },
  });
  const needsGrant = asked.kv || asked.http.length > 0;
  return (
    <section className="panel install" aria-label={`Install ${detail.name}`}>
      <h2>Install {detail.name}</h2>
      <label>
        Version
        <select value={version} onChange={(e) => setVersion(e.target.value)}>
          {detail.versions.filter((v) => !v.yanked).map((v) => <option key={v.version}>{v.version}</option>)}
        </select>
      </label>
      <SchemaForm
        schema={detail.config_schema as JsonSchema}
        initial={{}}
        serverErrors={serverErrors}
        busy={install.isPending}
        submitLabel="Install"
        onSubmit={(config) => (confirmed ? install.mutate(config) : undefined)}
      >
        {needsGrant && (
          <fieldset className="grants">
            <legend>Capabilities this plugin asks for</legend>
            {asked.kv && (
              <label className="inline"><input type="checkbox" checked={grantKv} onChange={(e) => setGrantKv(e.target.checked)} /> Grant its key-value store (it keeps state between calls)</label>
            )}
            {asked.http.length > 0 && (
              <label>
                HTTP hosts it may call {asked.http.includes("*") ? "(it lets you choose)" : `(it asks for ${asked.http.join(", ")})`}
                <input type="text" value={hosts} onChange={(e) => setHosts(e.target.value)} placeholder="host or host:port, comma-separated" />
              </label>
            )}
            <label className="inline"><input type="checkbox" checked={confirmed} onChange={(e) => setConfirmed(e.target.checked)} /> I grant these capabilities to {detail.name} for this tenant</label>
            {!confirmed && <div className="field-error">Confirm the capabilities to install.</div>}
          </fieldset>
        )}
        {install.isError && <div className="state error" role="alert">{explain(install.error)}</div>}
      </SchemaForm>
      <button className="link" onClick={onDone}>Cancel</button>
    </section>
  );
}
