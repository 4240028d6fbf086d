/** Calls to the console's API on the passport's own origin, with the CSRF value on every change. */
const csrf = document.querySelector<HTMLMetaElement>('meta[name="passport-csrf"]')?.content ?? ''

export class ApiError extends Error {
  readonly code: string
  constructor(code: string, description: string) {
    super(description)
    this.code = code
  }
}

async function answer<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>
  if (!res.ok) {
    throw new ApiError(
      String(body.error ?? res.status),
      String(body.error_description ?? body.error ?? res.statusText),
    )
  }
  return body as T
}

export async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } }))
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-Passport-CSRF': csrf },
      body: JSON.stringify(body),
    }),
  )
}
