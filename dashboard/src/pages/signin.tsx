import { useState } from "preact/hooks";
import { api } from "../api";
import { Logo } from "../components/logo";
import { ErrorBox } from "../components/ui";

export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!token.trim()) {
      setError("Enter the admin token.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.login(token.trim());
      setToken("");
      onSignedIn();
    } catch (e) {
      const err = e as { status?: number; message: string };
      setError(err.status === 401 ? "That token is not right. Check DURABLE_ADMIN_TOKEN on the engine." : err.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin-page" data-testid="sign-in">
      <form class="signin-card" onSubmit={submit}>
        <Logo />
        <h1>Sign in</h1>
        <p class="muted">
          This engine requires its admin token (<code>DURABLE_ADMIN_TOKEN</code>). Your session is kept in an httpOnly
          cookie.
        </p>
        <label class="field">
          <span class="field-label">Admin token</span>
          <input
            class="input mono"
            type="password"
            autocomplete="current-password"
            autofocus
            value={token}
            placeholder="••••••••••••"
            data-testid="token-input"
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          />
        </label>
        <ErrorBox error={error ?? undefined} />
        <button type="submit" class={`btn btn-primary btn-md btn-block ${busy ? "is-busy" : ""}`} disabled={busy} data-testid="sign-in-submit">
          {busy && <span class="spinner" />}
          Sign in
        </button>
      </form>
    </div>
  );
}
