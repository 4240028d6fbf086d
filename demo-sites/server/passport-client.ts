/**
 * How a site backend asks the passport about a token, with nothing but `fetch` and its client
 * credentials: RFC 7662 introspection, then (only for an inactive token) the status endpoint
 * for the reason to show the user.
 */
export type VerifyAnswer =
  | { active: true; sub: string; username: string; name: string }
  | { active: false; reason: string }

export function createPassportClient(input: { internalUrl: string; clientId: string; clientSecret: string }) {
  const authorization = `Basic ${Buffer.from(
    `${encodeURIComponent(input.clientId)}:${encodeURIComponent(input.clientSecret)}`,
  ).toString('base64')}`
  const post = async (path: string, token: string) => {
    const res = await fetch(`${input.internalUrl}${path}`, {
      method: 'POST',
      headers: { Authorization: authorization, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    })
    if (!res.ok) throw new Error(`passport ${path} answered ${res.status}`)
    return (await res.json()) as Record<string, unknown>
  }
  return {
    verify: async (token: string): Promise<VerifyAnswer> => {
      const answer = await post('/token/introspect', token)
      if (answer.active === true) {
        return {
          active: true,
          sub: String(answer.sub),
          username: String(answer.username),
          name: String(answer.name),
        }
      }
      const status = await post('/token/status', token)
      return { active: false, reason: typeof status.reason === 'string' ? status.reason : 'unknown' }
    },
  }
}
