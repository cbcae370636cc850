import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, explain, get, type Schemas } from "../api/client";
import { Empty, ErrorNote, Loading } from "../components/States";
import { when } from "../format";

type Members = Schemas["MemberListDto"];
type Invited = Schemas["InvitationCreatedDto"];
type Invitations = Schemas["InvitationListDto"];
const ROLES = ["viewer", "analyst", "admin", "owner"];

export function Members() {
  const qc = useQueryClient();
  const list = useQuery({ queryKey: ["members"], queryFn: () => get<Members>("/v1/users") });
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("viewer");
  const [error, setError] = useState<string | undefined>();
  const invitations = useQuery({ queryKey: ["invitations"], queryFn: () => get<Invitations>("/v1/invitations") });
  const [invited, setInvited] = useState<Invited | null>(null);
  const act = useMutation({
    mutationFn: ({ method, path, body }: { method: string; path: string; body?: unknown }) => api<Invited | undefined>(method, path, body),
    onSuccess: (r) => {
      if (r && "code" in r) { setInvited(r); setEmail(""); }
      qc.invalidateQueries({ queryKey: ["members"] });
      qc.invalidateQueries({ queryKey: ["invitations"] });
    },
    onError: (e) => setError(e instanceof ApiError && e.parameter === "email" ? e.message : undefined),
  });
  const add = (e: React.FormEvent) => {
    e.preventDefault();
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) return setError("Enter an email address.");
    setError(undefined);
    act.mutate({ method: "POST", path: "/v1/users", body: { email: email.trim(), role } });
  };
  return (
    <div>
      <header className="page-head"><h1>Members</h1></header>
      <form className="panel row" onSubmit={add} noValidate aria-label="Invite a member">
        <label>Email<input value={email} onChange={(e) => setEmail(e.target.value)} aria-invalid={!!error} />{error && <span className="field-error">{error}</span>}</label>
        <label>Role<select value={role} onChange={(e) => setRole(e.target.value)}>{ROLES.map((r) => <option key={r}>{r}</option>)}</select></label>
        <button type="submit" disabled={act.isPending}>Invite</button>
      </form>
      {invited && (
        <div className="panel notice" role="status">
          Invited {invited.invitation.email} as {invited.invitation.role}. Nothing is granted until they accept: hand them this link
          (shown once, works until {when(invited.invitation.expires_at)}):
          <div className="invite-link"><code className="secret">{`${window.location.origin}/join?code=${invited.code}`}</code></div>
        </div>
      )}
      {act.isError && <ErrorNote error={act.error} />}
      {list.isPending ? <Loading what="members" /> : list.isError ? <ErrorNote error={list.error} /> :
        list.data.users.length === 0 ? <Empty>No members.</Empty> : (
          <table>
            <thead><tr><th>Email</th><th>Role</th><th>Last sign-in</th><th></th></tr></thead>
            <tbody>
              {list.data.users.map((u) => (
                <tr key={u.id}>
                  <td>{u.email}{u.locked && <span className="badge warn">locked</span>}{u.sso_only && <span className="badge">SSO</span>}</td>
                  <td>
                    <select aria-label={`Role of ${u.email}`} value={u.role} onChange={(e) => act.mutate({ method: "PUT", path: `/v1/users/${u.id}`, body: { role: e.target.value } })}>
                      {ROLES.map((r) => <option key={r}>{r}</option>)}
                    </select>
                  </td>
                  <td>{u.last_login_at ? when(u.last_login_at) : "never"}</td>
                  <td><button className="secondary danger" onClick={() => window.confirm(`Remove ${u.email} from this tenant?`) && act.mutate({ method: "DELETE", path: `/v1/users/${u.id}` })}>Remove</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      {invitations.data && invitations.data.invitations.some((i) => i.state === "pending") && (
        <>
          <h2>Pending invitations</h2>
          <table aria-label="Pending invitations">
            <thead><tr><th>Email</th><th>Role</th><th>Invited by</th><th>Expires</th><th></th></tr></thead>
            <tbody>
              {invitations.data.invitations.filter((i) => i.state === "pending").map((i) => (
                <tr key={i.id}>
                  <td>{i.email}</td>
                  <td>{i.role}</td>
                  <td>{i.invited_by}</td>
                  <td>{when(i.expires_at)}</td>
                  <td><button className="secondary danger" onClick={() => act.mutate({ method: "DELETE", path: `/v1/invitations/${i.id}` })}>Revoke</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {act.isError && <p className="muted small">{explain(act.error)}</p>}
    </div>
  );
}
