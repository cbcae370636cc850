import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { get, query, type Schemas } from "../api/client";
import { useCursors } from "../components/Pager";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";

type Page = Schemas["AuditPageDto"];

export function Audit() {
  const [action, setAction] = useState("");
  const [actor, setActor] = useState("");
  const { cursor, reset, pager } = useCursors();
  const params = { action, actor, cursor, limit: 50 };
  const page = useQuery({ queryKey: ["audit", params], queryFn: () => get<Page>("/v1/audit" + query(params)) });
  const exportUrl = "/v1/audit" + query({ action, actor, format: "ndjson", limit: 10000 });
  return (
    <div>
      <header className="page-head">
        <h1>Audit log</h1>
        <a className="button secondary" href={exportUrl} download="audit.ndjson">Export NDJSON</a>
      </header>
      <form className="panel filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>Action starts with<input value={action} onChange={(e) => { reset(); setAction(e.target.value); }} placeholder="plugin." /></label>
        <label>Actor<input value={actor} onChange={(e) => { reset(); setActor(e.target.value); }} placeholder="user:ann@example.com" /></label>
      </form>
      {page.isPending ? <Loading what="the audit log" /> : page.isError ? <ErrorNote error={page.error} retry={() => page.refetch()} /> :
        page.data.records.length === 0 ? <Empty>Nothing recorded that matches.</Empty> : (
          <>
            <table>
              <thead><tr><th>When</th><th>Actor</th><th>Action</th><th>Target</th><th>Outcome</th><th>Change</th></tr></thead>
              <tbody>
                {page.data.records.map((r) => (
                  <tr key={r.id}>
                    <td>{when(r.at)}</td><td>{r.actor}</td><td className="mono">{r.action}</td><td>{r.target ?? "–"}</td>
                    <td><span className={r.outcome === "ok" ? "badge ok" : "badge warn"}>{r.outcome}</span></td>
                    <td className="small mono">{r.after ? JSON.stringify(r.after).slice(0, 120) : ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {pager(page.data.next_cursor)}
          </>
        )}
    </div>
  );
}
