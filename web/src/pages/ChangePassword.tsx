import { useState } from "react";
import { useNavigate } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { api, explain, ApiError } from "../api/client";

export function ChangePassword({ forced = false }: { forced?: boolean }) {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [errors, setErrors] = useState<{ current?: string; next?: string; again?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const found: typeof errors = {};
    if (!current) found.current = "Enter the password you signed in with.";
    if (next.length < 12) found.next = "Use at least 12 characters.";
    if (next !== again) found.again = "The two new passwords differ.";
    setErrors(found);
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      await api("POST", "/v1/auth/password", { current_password: current, new_password: next });
      await qc.invalidateQueries();
      navigate("/", { replace: true });
    } catch (err) {
      setErrors(
        err instanceof ApiError && err.parameter === "new_password"
          ? { next: err.message }
          : err instanceof ApiError && err.status === 401
            ? { current: "That is not your current password." }
            : { form: explain(err) },
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login">
      <form className="panel" onSubmit={submit} noValidate aria-label="Change password">
        <h1>{forced ? "Choose your password" : "Change password"}</h1>
        {forced && <p className="muted">You signed in with a one-time password. Choose your own to continue.</p>}
        <label>
          Current password
          <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} aria-invalid={!!errors.current} />
        </label>
        {errors.current && <div className="field-error">{errors.current}</div>}
        <label>
          New password
          <input type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} aria-invalid={!!errors.next} />
        </label>
        {errors.next && <div className="field-error">{errors.next}</div>}
        <label>
          New password again
          <input type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} aria-invalid={!!errors.again} />
        </label>
        {errors.again && <div className="field-error">{errors.again}</div>}
        {errors.form && <div className="state error" role="alert">{errors.form}</div>}
        <button type="submit" disabled={busy}>{busy ? "Saving…" : "Save password"}</button>
      </form>
    </div>
  );
}
