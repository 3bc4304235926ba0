// The login form: a username and password, or the server's bootstrap password alone.
import { useState } from 'preact/hooks';
import { login, notice } from './session.ts';
import { useStore } from './store.ts';

export function Login() {
  const why = useStore(notice);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(username, password);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="login-card form" onSubmit={submit} data-testid="login-form">
        <h1>Mission Control</h1>
        {why && (
          <p class="notice" data-testid="login-notice">
            {why}
          </p>
        )}
        <label>
          Username <span class="muted">(leave empty for the shared password)</span>
          <input
            name="username"
            autoComplete="username"
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            data-testid="login-username"
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            required
            autoComplete="current-password"
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            data-testid="login-password"
          />
        </label>
        {error && (
          <p class="error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy || password === ''} data-testid="login-submit">
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
