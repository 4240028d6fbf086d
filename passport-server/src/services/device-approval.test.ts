import { beforeEach, describe, expect, it } from 'vitest'
import type { ApprovalNotice } from '../events/bus.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'
import {
  ALL_LOGIN_MODES,
  addSite,
  addUser,
  allLogText,
  createTestDeps,
  type TestDeps,
} from '../test-support.ts'
import {
  APPROVAL_TTL_MS,
  APPROVED_USE_WITHIN_MS,
  BLOCK_AFTER_DENY_MS,
  createDeviceApprovals,
  type DeviceApprovals,
  drawCode,
  expireDueApprovals,
  MAX_PENDING_PER_USER,
  pendingPrompts,
  RATE_WINDOW_MS,
  REQUESTS_PER_ADDRESS,
  REQUESTS_PER_USER,
  readAnswer,
} from './device-approval.ts'
import { endSession, startSession } from './sessions.ts'

const PHONE =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36'

describe('device approval', () => {
  let deps: TestDeps
  let approvals: DeviceApprovals
  let shop: SiteRecord
  let trusted: SessionRecord
  let notices: ApprovalNotice[]
  let address = 0

  beforeEach(async () => {
    deps = await createTestDeps()
    approvals = createDeviceApprovals(deps)
    await addUser(deps, 'alice')
    await addUser(deps, 'bob')
    shop = (await addSite(deps, { id: 'shop', loginModes: ALL_LOGIN_MODES })).site
    trusted = (await startSession(deps, 'u_alice', 'Firefox on the laptop')).session
    notices = []
    deps.events.subscribeApprovals((n) => notices.push(n))
  })

  /** A request from its own address, so per-address limits stay out of tests about other things. */
  const ask = (username = 'alice', extra: { address?: string } = {}) =>
    approvals.request({
      username,
      site: shop,
      kind: 'browser',
      context: '{}',
      userAgent: PHONE,
      address: extra.address ?? `10.0.0.${++address}`,
    })
  const opened = async (username = 'alice') => {
    const result = await ask(username)
    if (!result.ok) throw new Error(`refused: ${result.refusal}`)
    return result
  }
  /** A two-digit code other than `code`. */
  const otherThan = (code: string) => String((Number(code) + 1) % 100).padStart(2, '0')

  it('gives a two-digit code and pushes the request to the user without it or any choices', async () => {
    const { approval, secret } = await opened()
    expect(approval.code).toMatch(/^\d\d$/)
    expect(approval.expiresAt - approval.createdAt).toBe(APPROVAL_TTL_MS)
    expect(approval.secretHash).not.toBe(secret)
    expect(notices).toEqual([
      {
        type: 'approval_request',
        userId: 'u_alice',
        prompt: expect.objectContaining({
          id: approval.id,
          siteName: shop.name,
          device: 'Chrome 131 on Android', // described, never the raw header
        }),
      },
    ])
    // The approving device is never given the code, nor numbers among which it would be.
    const prompt = notices[0]?.type === 'approval_request' ? notices[0].prompt : null
    expect(Object.keys(prompt ?? {}).sort()).toEqual(
      ['address', 'bindingMessage', 'device', 'expiresAt', 'id', 'siteName'].sort(),
    )
    expect(JSON.stringify(notices)).not.toContain('"code"')
    expect(JSON.stringify(notices)).not.toContain('choices')
    expect(allLogText(deps.logs)).not.toContain(secret)
  })

  it('codes are uniform over 00–99: every value occurs, none outside, none far from 1 in 100', () => {
    const draws = 20_000
    const counts = new Map<string, number>()
    for (let i = 0; i < draws; i++) {
      const code = drawCode()
      counts.set(code, (counts.get(code) ?? 0) + 1)
    }
    const all = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'))
    expect([...counts.keys()].sort()).toEqual(all)
    // 200 expected each (standard deviation ~14): a biased generator (10–99 only, or a modulo
    // skew of a few percent) fails; a uniform one stays within 7 deviations, practically always.
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(100)
      expect(n).toBeLessThan(300)
    }
  })

  it('H1, K4: a blind try passes 1 time in 100: one wrong code cancels, so a second try is refused', async () => {
    const { approval, secret } = await opened()
    // The code is one of 100 equally likely values (test above) and the approving device never
    // sees it: a guess matches with probability 1/100, and a miss ends the request.
    expect(
      await approvals.decide({
        approvalId: approval.id,
        approver: trusted,
        answer: { code: otherThan(approval.code) },
      }),
    ).toEqual({ outcome: 'mismatch' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('cancelled')
    expect(notices.at(-1)).toEqual({
      type: 'approval_closed',
      userId: 'u_alice',
      approvalId: approval.id,
      outcome: 'cancelled',
      reason: 'code_mismatch',
    })
    // The second try, even with the right code, changes nothing.
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
    ).toEqual({ outcome: 'gone' })
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
    expect(deps.logs.map((l) => l.event)).toContain('approval_code_mismatch')
    expect(allLogText(deps.logs)).not.toContain(`"${approval.code}"`)
  })

  it('H3: the right code approves once; the new device redeems it once', async () => {
    const { approval, secret } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
    ).toEqual({
      outcome: 'approved',
    })
    expect(notices.at(-1)).toEqual({
      type: 'approval_closed',
      userId: 'u_alice',
      approvalId: approval.id,
      outcome: 'approved',
    })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('approved')
    const used = await approvals.redeem(secret, 'browser')
    expect(used?.userId).toBe('u_alice')
    // A replayed approval does nothing: no second redeem, no second decision.
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
    ).toEqual({ outcome: 'gone' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('used')
  })

  it('H4: an approval whose approving device was signed out before pickup signs nobody in', async () => {
    const { approval, secret } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
    ).toEqual({ outcome: 'approved' })
    // The approving device is kicked (stolen laptop revoked from "Your devices") before pickup.
    await endSession(deps, trusted, 'revoked')
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
    expect(deps.logs).toContainEqual(
      expect.objectContaining({
        event: 'approval_rejected',
        fields: expect.objectContaining({ reason: 'approver_ended' }),
      }),
    )
  })
  it('deny cancels; the new device sees "denied" and cannot redeem', async () => {
    const { approval, secret } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { deny: true } }),
    ).toEqual({
      outcome: 'denied',
    })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('denied')
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
  })

  it('H3: expires after two minutes: no decision takes, the new device sees "expired"', async () => {
    const { approval, secret } = await opened()
    deps.clock.advance(APPROVAL_TTL_MS)
    expect((await approvals.view(secret, 'browser'))?.status).toBe('expired')
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
    ).toEqual({ outcome: 'gone' })
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
    expect(await pendingPrompts(deps, 'u_alice')).toEqual([])
  })

  it('the sweep ends requests past their two minutes and tells everyone, once', async () => {
    const { approval, secret } = await opened()
    deps.clock.advance(1_000)
    const fresh = await opened()
    deps.clock.advance(APPROVAL_TTL_MS - 1_001)
    expect(await expireDueApprovals(deps)).toBe(0)
    deps.clock.advance(1)
    expect(await expireDueApprovals(deps)).toBe(1)
    expect(notices.at(-1)).toEqual({
      type: 'approval_closed',
      userId: 'u_alice',
      approvalId: approval.id,
      outcome: 'expired',
    })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('expired')
    expect(await expireDueApprovals(deps)).toBe(0)
    deps.clock.advance(1_000)
    expect(await expireDueApprovals(deps)).toBe(1) // the second, opened a moment later
    expect((await approvals.view(fresh.secret, 'browser'))?.status).toBe('expired')
  })

  it('H3: an approval must be picked up within a minute', async () => {
    const { approval, secret } = await opened()
    await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } })
    deps.clock.advance(APPROVED_USE_WITHIN_MS + 1)
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
  })

  it('H5: approve, deny and a wrong code racing: exactly one outcome, 100 times', async () => {
    for (let round = 0; round < 100; round++) {
      const { approval } = await opened()
      const answers = await Promise.all([
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { deny: true } }),
        approvals.decide({
          approvalId: approval.id,
          approver: trusted,
          answer: { code: otherThan(approval.code) },
        }),
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } }),
      ])
      const outcomes = answers.map((a) => a.outcome).filter((o) => o !== 'gone')
      expect(outcomes).toHaveLength(1)
      // Past the block a winning deny sets, and past alice's request window.
      deps.clock.advance(BLOCK_AFTER_DENY_MS)
    }
  })

  it(`K4: push fatigue: at most ${REQUESTS_PER_USER} requests per account in 10 minutes reach its devices`, async () => {
    for (let i = 0; i < REQUESTS_PER_USER; i++) {
      const { secret } = await opened()
      await approvals.withdraw(secret, 'browser') // answered or not, each one counts
    }
    const shown = notices.filter((n) => n.type === 'approval_request').length
    const fourth = await ask()
    expect(fourth).toMatchObject({ ok: false, refusal: 'rate_limited' })
    expect(fourth.ok ? 0 : fourth.retryAfterSeconds).toBeGreaterThan(0)
    expect(notices.filter((n) => n.type === 'approval_request')).toHaveLength(shown)
    expect(deps.logs.map((l) => l.event)).toContain('excess_rate_limit_exceeded')
    // Another account is not affected; the same one is again once the window has passed.
    expect((await ask('bob')).ok).toBe(true)
    deps.clock.advance(RATE_WINDOW_MS)
    expect((await ask()).ok).toBe(true)
  })

  it(`at most ${MAX_PENDING_PER_USER} pending per user across instances sharing the store`, async () => {
    // Each instance counts requests in its own memory; the store's pending count is shared.
    const instances = Array.from({ length: MAX_PENDING_PER_USER + 1 }, () => createDeviceApprovals(deps))
    for (const instance of instances.slice(0, MAX_PENDING_PER_USER)) {
      expect(
        (
          await instance.request({
            username: 'alice',
            site: shop,
            kind: 'browser',
            context: '{}',
            userAgent: PHONE,
            address: '10.1.1.1',
          })
        ).ok,
      ).toBe(true)
    }
    const before = notices.length
    const last = instances.at(-1) as DeviceApprovals
    expect(
      await last.request({
        username: 'alice',
        site: shop,
        kind: 'browser',
        context: '{}',
        userAgent: PHONE,
        address: '10.1.1.1',
      }),
    ).toMatchObject({ ok: false, refusal: 'too_many_pending' })
    expect(notices).toHaveLength(before)
    expect(await pendingPrompts(deps, 'u_alice')).toHaveLength(MAX_PENDING_PER_USER)
  })

  it('H2: rate limits per address and per username, even for unknown usernames', async () => {
    for (let i = 0; i < REQUESTS_PER_ADDRESS; i++) {
      expect((await ask(`nobody${i}`, { address: '10.9.9.9' })).ok).toBe(true)
    }
    expect(await ask('nobody-else', { address: '10.9.9.9' })).toMatchObject({
      ok: false,
      refusal: 'rate_limited',
    })
    for (let i = 0; i < REQUESTS_PER_USER; i++) await ask('ghost')
    expect(await ask('ghost')).toMatchObject({ ok: false, refusal: 'rate_limited' })
  })

  it('"Deny, I did not ask for this" blocks new requests for the account for an hour, logged', async () => {
    const { approval } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { deny: true } }),
    ).toEqual({
      outcome: 'denied',
    })
    expect(deps.logs.find((l) => l.event === 'authn_login_lock')).toMatchObject({
      fields: { user: 'u_alice', via: 'device_approval', reason: 'denied_by_user' },
    })
    const shown = notices.length
    // By the name as typed, whatever its case, and from any address.
    for (const username of ['alice', 'ALICE']) {
      expect(await ask(username)).toMatchObject({ ok: false, refusal: 'blocked' })
    }
    expect(notices).toHaveLength(shown)
    // Other accounts are not affected.
    expect((await ask('bob')).ok).toBe(true)
    deps.clock.advance(BLOCK_AFTER_DENY_MS - 1_000)
    expect(await ask()).toMatchObject({ ok: false, refusal: 'blocked', retryAfterSeconds: 1 })
    deps.clock.advance(1_000)
    expect((await ask()).ok).toBe(true)
  })

  it('a site without the `device` mode takes no browser request; without `ciba`, no CIBA request', async () => {
    const passwordOnly = (await addSite(deps, { id: 'news' })).site
    expect(passwordOnly.loginModes).toEqual(['password'])
    for (const kind of ['browser', 'ciba'] as const) {
      expect(
        await approvals.request({
          username: 'alice',
          site: passwordOnly,
          kind,
          context: '',
          userAgent: PHONE,
          address: '10.2.2.2',
        }),
      ).toMatchObject({ ok: false, refusal: 'mode_not_allowed' })
    }
    expect(notices).toEqual([])
  })

  it('an unknown username gets a request like any other, pushed to nobody, that never approves', async () => {
    const result = await opened('mallory')
    expect(result.approval.code).toMatch(/^\d\d$/)
    expect(notices).toEqual([])
    expect(await approvals.redeem(result.secret, 'browser')).toBeNull()
  })

  it('an unknown username hits the request limit exactly like a real one (no account probing)', async () => {
    for (const username of ['alice', 'mallory']) {
      for (let i = 0; i < REQUESTS_PER_USER; i++) expect((await ask(username)).ok).toBe(true)
      expect(await ask(username)).toMatchObject({ ok: false, refusal: 'rate_limited' })
    }
    // The limit is per name as typed, whatever its case.
    expect(await ask('MALLORY')).toMatchObject({ ok: false, refusal: 'rate_limited' })
  })

  it("H4: refuses an approver whose session has ended, or another user's session; nothing changes", async () => {
    const { approval, secret } = await opened()
    const bobs = (await startSession(deps, 'u_bob', 'Bob')).session
    expect(
      await approvals.decide({ approvalId: approval.id, approver: bobs, answer: { code: approval.code } }),
    ).toEqual({ outcome: 'not_yours' })
    await endSession(deps, trusted, 'signed_out')
    const ended = await deps.store.sessions.get(trusted.id)
    expect(
      await approvals.decide({
        approvalId: approval.id,
        approver: ended as SessionRecord,
        answer: { code: approval.code },
      }),
    ).toEqual({ outcome: 'gone' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('pending')
  })

  it('an answer that is not two digits or a deny is refused before it reaches a request', () => {
    expect(readAnswer('07', undefined)).toEqual({ code: '07' })
    expect(readAnswer(undefined, true)).toEqual({ deny: true })
    for (const [code, deny] of [
      ['7', undefined],
      ['100', undefined],
      ['x', undefined],
      ['', undefined],
      [7, undefined],
      ['07', true],
      [undefined, undefined],
      [undefined, 'true'],
    ]) {
      expect(readAnswer(code, deny)).toBeNull()
    }
  })

  it("a secret works only for its own kind: a browser's for the browser, CIBA's for CIBA", async () => {
    const { approval, secret } = await opened()
    await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { code: approval.code } })
    expect(await approvals.view(secret, 'ciba')).toBeNull()
    expect(await approvals.redeem(secret, 'ciba')).toBeNull()
    expect(await approvals.withdraw(secret, 'ciba')).toBe(false)
    expect((await approvals.redeem(secret, 'browser'))?.userId).toBe('u_alice')
  })

  it('the requester may withdraw its own request; unknown secrets see nothing', async () => {
    const { approval, secret } = await opened()
    expect(await approvals.view('not-a-secret', 'browser')).toBeNull()
    expect(await approvals.withdraw('not-a-secret', 'browser')).toBe(false)
    expect(await approvals.withdraw(secret, 'browser')).toBe(true)
    expect(notices.at(-1)).toMatchObject({
      type: 'approval_closed',
      approvalId: approval.id,
      outcome: 'cancelled',
    })
    expect(await approvals.withdraw(secret, 'browser')).toBe(false)
  })

  it('waitForChange wakes on a decision and otherwise times out', async () => {
    const { approval } = await opened()
    const started = Date.now()
    await approvals.waitForChange(approval.id, 30)
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    const waiting = approvals.waitForChange(approval.id, 10_000)
    await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { deny: true } })
    await waiting
  })
})
