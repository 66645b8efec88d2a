/** Log in with the api key (read) or the admin key (actions); the key never lands in storage. */
import { useState } from "preact/hooks"
import { api, type Session } from "../api.js"
import { ErrorBox } from "../ui.js"

export const LoginPage = ({ session, onLogin }: { session: Session | undefined; onLogin: (s: Session) => void }) => {
  const [key, setKey] = useState("")
  const [error, setError] = useState<unknown>(undefined)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    try {
      const s = await api.login(key === "" ? undefined : key)
      setKey("")
      setError(undefined)
      onLogin(s)
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main class="login">
      <h1>Log in</h1>
      {session !== undefined && <p>{session.note}</p>}
      <form onSubmit={submit}>
        <label>
          Key (the api key reads; the admin key may also run, cancel, pause and resume)
          <input
            type="password"
            name="key"
            autocomplete="current-password"
            value={key}
            onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary" disabled={busy}>Log in</button>
      </form>
      <ErrorBox error={error} />
    </main>
  )
}
