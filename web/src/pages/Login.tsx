import { useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, explain, get, ApiError } from "../api/client";

type Providers = { sso: boolean };

export function Login() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<{ email?: string; password?: string; form?: string }>({});
  const [busy, setBusy] = useState(false);
  const sso = useQuery({ queryKey: ["providers"], queryFn: () => get<Providers>("/v1/auth/providers") });
  const next = params.get("next");
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const found: typeof errors = {};
    if (!/^[^@\s]+@[^@\s]+$/.test(email.trim())) found.email = "Enter the email you sign in with.";
    if (!password) found.password = "Enter your password.";
    setErrors(found);
    if (Object.keys(found).length) return;
    setBusy(true);
    try {
      await api("POST", "/v1/auth/login", { email: email.trim(), password });
      await qc.invalidateQueries();
      navigate(target, { replace: true });
    } catch (err) {
      setErrors({
        form:
          err instanceof ApiError && err.status === 401
            ? "That email and password do not match. Check both and try again."
            : explain(err),
      });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login">
      <form className="panel" onSubmit={submit} noValidate aria-label="Sign in">
        <h1>Sign in</h1>
        <p className="muted">LLM Analytics Hub</p>
        <label>
          Email
          <input
            type="email"
            autoComplete="username"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
            aria-invalid={!!errors.email}
            autoFocus
          />
        </label>
        {errors.email && <div className="field-error">{errors.email}</div>}
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            aria-invalid={!!errors.password}
          />
        </label>
        {errors.password && <div className="field-error">{errors.password}</div>}
        {errors.form && (
          <div className="state error" role="alert">
            {errors.form}
          </div>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {sso.data?.sso && (
          <a className="button secondary" href={"/v1/auth/oidc/login"}>
            Sign in with single sign-on
          </a>
        )}
      </form>
    </div>
  );
}
