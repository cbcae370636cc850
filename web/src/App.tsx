import { useEffect } from "react";
import { Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { api, setSignedOutHandler } from "./api/client";
import { atLeast, useMe } from "./auth";
import { Login } from "./pages/Login";
import { Join } from "./pages/Join";
import { ChangePassword } from "./pages/ChangePassword";
import { Overview } from "./pages/Overview";
import { Marketplace, PackagePage } from "./pages/Marketplace";
import { Keys } from "./pages/Keys";
import { Plugins } from "./pages/Plugins";
import { Events } from "./pages/Events";
import { Alerts } from "./pages/Alerts";
import { Anomalies } from "./pages/Anomalies";
import { Audit } from "./pages/Audit";
import { Members } from "./pages/Members";
import { SettingsPage } from "./pages/Settings";
import { ErrorNote, Loading } from "./components/States";

export function App() {
  const navigate = useNavigate();
  const location = useLocation();
  const qc = useQueryClient();
  useEffect(() => {
    // An expired session: back to login, then back to where the person was.
    setSignedOutHandler(() => {
      qc.clear();
      if (!window.location.pathname.startsWith("/login")) {
        // From the join page too: after signing in, the person comes back to accept.
        navigate("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      }
    });
  }, [navigate, qc]);
  if (location.pathname === "/login") return <Login />;
  if (location.pathname === "/join") return <Join />;
  return <Shell />;
}

function Shell() {
  const me = useMe();
  const qc = useQueryClient();
  const navigate = useNavigate();
  if (me.isPending) return <Loading what="your session" />;
  if (me.isError) return <ErrorNote error={me.error} retry={() => me.refetch()} />;
  const m = me.data;
  if (m.kind === "user" && m.must_change_password) return <ChangePassword forced />;
  const admin = atLeast(m, "admin");
  const analyst = atLeast(m, "analyst");
  const logout = async () => {
    await api("POST", "/v1/auth/logout", {}).catch(() => undefined);
    qc.clear();
    navigate("/login");
  };
  return (
    <div className="shell">
      <nav className="side" aria-label="Main">
        <div className="brand">LLM Analytics Hub</div>
        <NavLink to="/" end>Overview</NavLink>
        <NavLink to="/anomalies">Anomalies</NavLink>
        <NavLink to="/alerts">Alerts</NavLink>
        {analyst && <NavLink to="/events">Events</NavLink>}
        {analyst && <NavLink to="/plugins">Plugins</NavLink>}
        <NavLink to="/marketplace">Marketplace</NavLink>
        {admin && (
          <>
            <div className="nav-group">Settings</div>
            <NavLink to="/settings/keys">API keys</NavLink>
            <NavLink to="/settings/members">Members</NavLink>
            <NavLink to="/settings/audit">Audit log</NavLink>
            <NavLink to="/settings/general">Sign-in and retention</NavLink>
          </>
        )}
        <div className="who">
          <div title={m.name}>{m.name}</div>
          <div className="muted">
            {m.tenant} · {m.role ?? m.scopes.join(",")}
          </div>
          <button className="link" onClick={logout}>Sign out</button>
        </div>
      </nav>
      <main className="content">
        <Routes>
          <Route path="/" element={<Overview />} />
          <Route path="/anomalies" element={<Anomalies />} />
          <Route path="/alerts" element={<Alerts canWrite={analyst} />} />
          <Route path="/events" element={analyst ? <Events /> : <Forbidden />} />
          <Route path="/plugins" element={analyst ? <Plugins /> : <Forbidden />} />
          <Route path="/marketplace" element={<Marketplace />} />
          <Route path="/marketplace/:name" element={<PackagePage />} />
          <Route path="/settings/keys" element={admin ? <Keys /> : <Forbidden />} />
          <Route path="/settings/members" element={admin ? <Members /> : <Forbidden />} />
          <Route path="/settings/audit" element={admin ? <Audit /> : <Forbidden />} />
          <Route path="/settings/general" element={admin ? <SettingsPage /> : <Forbidden />} />
          <Route path="/password" element={<ChangePassword />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </main>
    </div>
  );
}

function Forbidden() {
  return (
    <div className="panel">
      <h1>Not for your role</h1>
      <p>This page needs a higher role in this tenant. Ask one of its admins.</p>
    </div>
  );
}
