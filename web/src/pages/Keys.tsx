import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, type Schemas } from "../api/client";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";

type Keys = Schemas["ApiKeyListDto"];
type NewKey = Schemas["NewApiKeyDto"];
const SCOPES = ["ingest", "query", "admin"] as const;

export function Keys() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["keys"], queryFn: () => get<Keys>("/v1/api-keys") });
  const [shown, setShown] = useState<NewKey | null>(null);
  const act = useMutation({
    mutationFn: ({ method, path, body }: { method: string; path: string; body?: unknown }) => api<NewKey | undefined>(method, path, body),
    onSuccess: (r) => {
      if (r && "key" in r) setShown(r);
      qc.invalidateQueries({ queryKey: ["keys"] });
    },
  });
  return (
    <div>
      <header className="page-head"><h1>API keys</h1></header>
      {shown && <ShownOnce created={shown} onClose={() => setShown(null)} />}
      <CreateKey onCreated={(k) => { setShown(k); qc.invalidateQueries({ queryKey: ["keys"] }); }} />
      {act.isError && <ErrorNote error={act.error} />}
      {list.isPending ? <Loading what="keys" /> : list.isError ? <ErrorNote error={list.error} retry={() => list.refetch()} /> :
        list.data.keys.length === 0 ? <Empty>No keys yet.</Empty> : (
          <table>
            <thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>State</th><th>Created</th><th>Last used</th><th></th></tr></thead>
            <tbody>
              {list.data.keys.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td><td className="mono">{k.prefix}</td><td>{k.scopes.join(", ")}</td>
                  <td><span className={k.state === "active" ? "badge ok" : "badge"}>{k.state}</span></td>
                  <td>{when(k.created_at)}</td><td>{k.last_used_at ? when(k.last_used_at) : "never"}</td>
                  <td className="row">
                    {(k.state === "active" || k.state === "rotating") && (
                      <>
                        <button className="secondary" onClick={() => act.mutate({ method: "POST", path: `/v1/api-keys/${k.id}/rotate`, body: { grace: "1h" } })}>Rotate</button>
                        <button className="secondary danger" onClick={() => window.confirm(`Revoke ${k.prefix}? Clients using it stop at once.`) && act.mutate({ method: "DELETE", path: `/v1/api-keys/${k.id}` })}>Revoke</button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </div>
  );
}

function CreateKey({ onCreated }: { onCreated: (k: NewKey) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["ingest"]);
  const [errors, setErrors] = useState<{ name?: string; scopes?: string; form?: string }>({});
  const create = useMutation({
    mutationFn: () => api<NewKey>("POST", "/v1/api-keys", { name: name.trim(), scopes }),
    onSuccess: (k) => { setName(""); onCreated(k); },
    onError: (e) => setErrors(e instanceof ApiError && e.parameter === "name" ? { name: e.message } : { form: explain(e) }),
  });
  const submit = (e: React.FormEvent) => {
    e.preventDefault();
    const found: typeof errors = {};
    if (!name.trim()) found.name = "Give the key a name that says who uses it.";
    if (scopes.length === 0) found.scopes = "Pick at least one scope.";
    setErrors(found);
    if (!Object.keys(found).length) create.mutate();
  };
  return (
    <form className="panel row" onSubmit={submit} noValidate aria-label="Create an API key">
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} aria-invalid={!!errors.name} placeholder="support-bot production" />
        {errors.name && <span className="field-error">{errors.name}</span>}
      </label>
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label key={s} className="inline">
            <input type="checkbox" checked={scopes.includes(s)} onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))} /> {s}
          </label>
        ))}
        {errors.scopes && <span className="field-error">{errors.scopes}</span>}
      </fieldset>
      <button type="submit" disabled={create.isPending}>Create key</button>
      {errors.form && <div className="state error" role="alert">{errors.form}</div>}
    </form>
  );
}

function ShownOnce({ created, onClose }: { created: NewKey; onClose: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="panel notice" role="dialog" aria-label="New API key">
      <strong>Copy this key now: it is shown only once.</strong>
      <div className="row">
        <code className="secret" data-testid="new-key">{created.key}</code>
        <button onClick={async () => { await navigator.clipboard?.writeText(created.key).catch(() => undefined); setCopied(true); }}>
          {copied ? "Copied" : "Copy"}
        </button>
        <button className="secondary" onClick={onClose}>Done</button>
      </div>
    </div>
  );
}
