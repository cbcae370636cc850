import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { api, explain, ApiError, SignedOut } from "../api/client";

/** Where an invitation link lands: a person new to the hub chooses a password; a person with an
 *  account gives theirs, or accepts as the signed-in person (single sign-on users do that). */
export function Join() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [code, setCode] = useState(params.get("code") ?? "");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<{ code?: string; password?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);

  const done = async () => {
    await qc.invalidateQueries();
    navigate("/", { replace: true });
  };
  const failed = (err: unknown) => {
    if (err instanceof SignedOut) return; // on to the login page, and back here after
    setErrors(
      err instanceof ApiError && err.status === 404
        ? { code: err.message }
        : err instanceof ApiError && err.parameter === "password"
          ? { password: err.message }
          : err instanceof ApiError && err.status === 401
            ? { password: "That is not the password of the invited account. If you sign in with single sign-on, use “Accept as the signed-in person”." }
            : { form: explain(err) },
    );
  };
  const redeem = async (e: React.FormEvent) => {
    e.preventDefault();
    const found: typeof errors = {};
    if (!code.trim()) found.code = "Paste the invitation code or open the link you were given.";
    if (!password) found.password = "Choose a password of at least 12 characters, or give your account's.";
    setErrors(found);
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      await api("POST", "/v1/auth/invitations/redeem", { code: code.trim(), password });
      await done();
    } catch (err) {
      failed(err);
    } finally {
      setBusy(false);
    }
  };
  const acceptSignedIn = async () => {
    if (!code.trim()) return setErrors({ code: "Paste the invitation code or open the link you were given." });
    setBusy(true);
    try {
      await api("POST", "/v1/auth/invitations/accept", { code: code.trim() });
      await done();
    } catch (err) {
      failed(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login">
      <form className="panel" onSubmit={redeem} noValidate aria-label="Join a tenant">
        <h1>Join a tenant</h1>
        <p className="muted">New here: choose a password for your account. Already have an account: give its password.</p>
        <label>
          Invitation code
          <input value={code} onChange={(e) => setCode(e.target.value)} aria-invalid={!!errors.code} />
        </label>
        {errors.code && <div className="field-error">{errors.code}</div>}
        <label>
          Password
          <input type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} aria-invalid={!!errors.password} />
        </label>
        {errors.password && <div className="field-error">{errors.password}</div>}
        {errors.form && <div className="state error" role="alert">{errors.form}</div>}
        <button type="submit" disabled={busy}>{busy ? "Joining…" : "Join"}</button>
        <button type="button" className="secondary" disabled={busy} onClick={acceptSignedIn}>Accept as the signed-in person</button>
      </form>
    </div>
  );
}
