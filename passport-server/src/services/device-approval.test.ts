import { beforeEach, describe, expect, it } from 'vitest'
import type { ApprovalNotice } from '../events/bus.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'
import { addSite, addUser, allLogText, createTestDeps, type TestDeps } from '../test-support.ts'
import {
  APPROVAL_TTL_MS,
  APPROVED_USE_WITHIN_MS,
  choicesFor,
  createDeviceApprovals,
  type DeviceApprovals,
  expireDueApprovals,
  MAX_PENDING_PER_USER,
  pendingPrompts,
  REQUESTS_PER_ADDRESS,
  REQUESTS_PER_USER,
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
    shop = (await addSite(deps, { id: 'shop' })).site
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
  const wrongPick = (choices: string[], code: string) => choices.find((c) => c !== code) as string

  it('gives a two-digit code among three distinct choices and pushes the request to the user', async () => {
    const { approval, secret } = await opened()
    expect(approval.code).toMatch(/^[1-9][0-9]$/)
    expect(approval.choices).toHaveLength(3)
    expect(new Set(approval.choices).size).toBe(3)
    expect(approval.choices).toContain(approval.code)
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
          choices: approval.choices,
        }),
      },
    ])
    // The prompt never says which choice is the code.
    expect(JSON.stringify(notices)).not.toContain('"code"')
    expect(allLogText(deps.logs)).not.toContain(secret)
  })

  it('choices are shuffled: the code is not always in the same place', () => {
    const places = new Set<number>()
    for (let i = 0; i < 200; i++) {
      const choices = choicesFor('42')
      places.add(choices.indexOf('42'))
    }
    expect(places).toEqual(new Set([0, 1, 2]))
  })

  it('H3: the right pick approves once; the new device redeems it once', async () => {
    const { approval, secret } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
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
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
    ).toEqual({ outcome: 'gone' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('used')
  })

  it('H4: an approval whose approving device was signed out before pickup signs nobody in', async () => {
    const { approval, secret } = await opened()
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
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

  it('H1: three wrong picks cancel, with new decoys after each', async () => {
    const { approval, secret } = await opened()
    let choices = approval.choices
    for (const left of [2, 1]) {
      const answer = await approvals.decide({
        approvalId: approval.id,
        approver: trusted,
        answer: { pick: wrongPick(choices, approval.code) },
      })
      expect(answer).toMatchObject({ outcome: 'wrong', picksLeft: left })
      if (answer.outcome !== 'wrong') throw new Error('expected wrong')
      expect(answer.choices).toContain(approval.code)
      choices = answer.choices
      expect(notices.at(-1)).toMatchObject({ type: 'approval_request', prompt: { choices } })
    }
    expect(
      await approvals.decide({
        approvalId: approval.id,
        approver: trusted,
        answer: { pick: wrongPick(choices, approval.code) },
      }),
    ).toEqual({ outcome: 'cancelled' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('cancelled')
    expect(notices.at(-1)).toMatchObject({ type: 'approval_closed', outcome: 'cancelled' })
    // Even the right code now does nothing.
    expect(
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
    ).toEqual({ outcome: 'gone' })
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
  })

  it('H1/K4: wrong picks racing are counted by compare-and-swap: never more than three guesses, 50 times', async () => {
    for (let run = 0; run < 50; run++) {
      const { approval } = await opened()
      const wrong = wrongPick(approval.choices, approval.code)
      // Five wrong picks at once, all made against the choices first shown.
      const answers = await Promise.all(
        Array.from({ length: 5 }, () =>
          approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: wrong } }),
        ),
      )
      const counted = answers.filter((a) => a.outcome === 'wrong' || a.outcome === 'cancelled')
      expect(counted.length).toBeLessThanOrEqual(3)
      const stored = await deps.store.approvals.get(approval.id)
      expect(stored?.wrongPicks ?? 0).toBeLessThan(3)
      // Whatever got through, the right pick may still approve only while fewer than 3 were wrong.
      const fresh = stored?.choices ?? []
      const right = await approvals.decide({
        approvalId: approval.id,
        approver: trusted,
        answer: { pick: approval.code },
      })
      if (stored?.status === 'pending') expect(fresh).toContain(approval.code)
      expect(['approved', 'gone']).toContain(right.outcome)
      await deps.store.approvals.decide(approval.id, 'cancelled', deps.clock.now(), null)
      deps.clock.advance(10 * 60_000) // out of the per-username request limit
    }
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
      await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
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
    await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } })
    deps.clock.advance(APPROVED_USE_WITHIN_MS + 1)
    expect(await approvals.redeem(secret, 'browser')).toBeNull()
  })

  it('H5: approve and deny racing: exactly one outcome, 100 times', async () => {
    for (let round = 0; round < 100; round++) {
      const { approval } = await opened()
      const answers = await Promise.all([
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { deny: true } }),
        approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } }),
      ])
      const outcomes = answers.map((a) => a.outcome).filter((o) => o !== 'gone')
      expect(outcomes).toHaveLength(1)
      deps.clock.advance(APPROVAL_TTL_MS) // keeps alice under her pending limit
    }
  })

  it(`H2: at most ${MAX_PENDING_PER_USER} pending per user: the next is refused and changes nothing`, async () => {
    for (let i = 0; i < MAX_PENDING_PER_USER; i++) await opened()
    const before = notices.length
    expect(await ask()).toMatchObject({ ok: false, refusal: 'too_many_pending' })
    expect(notices).toHaveLength(before)
    expect(await pendingPrompts(deps, 'u_alice')).toHaveLength(MAX_PENDING_PER_USER)
    // Another user is not affected.
    expect((await ask('bob')).ok).toBe(true)
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

  it('an unknown username gets a request like any other, pushed to nobody, that never approves', async () => {
    const result = await opened('mallory')
    expect(result.approval.code).toMatch(/^\d\d$/)
    expect(notices).toEqual([])
    expect(await approvals.redeem(result.secret, 'browser')).toBeNull()
  })

  it('an unknown username hits the pending limit exactly like a real one (no account probing)', async () => {
    for (const username of ['alice', 'mallory']) {
      for (let i = 0; i < MAX_PENDING_PER_USER; i++) expect((await ask(username)).ok).toBe(true)
      expect(await ask(username)).toMatchObject({ ok: false, refusal: 'too_many_pending' })
    }
    // The limit is per name as typed, whatever its case.
    expect(await ask('MALLORY')).toMatchObject({ ok: false, refusal: 'too_many_pending' })
  })

  it("H4: refuses an approver whose session has ended, or another user's session; nothing changes", async () => {
    const { approval, secret } = await opened()
    const bobs = (await startSession(deps, 'u_bob', 'Bob')).session
    expect(
      await approvals.decide({ approvalId: approval.id, approver: bobs, answer: { pick: approval.code } }),
    ).toEqual({ outcome: 'not_yours' })
    await endSession(deps, trusted, 'signed_out')
    const ended = await deps.store.sessions.get(trusted.id)
    expect(
      await approvals.decide({
        approvalId: approval.id,
        approver: ended as SessionRecord,
        answer: { pick: approval.code },
      }),
    ).toEqual({ outcome: 'gone' })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('pending')
  })

  it('a pick that is not one of the choices changes nothing', async () => {
    const { approval, secret } = await opened()
    const outside = ['00', '100', 'x', ''].concat(
      Array.from({ length: 90 }, (_, i) => String(i + 10))
        .filter((c) => !approval.choices.includes(c))
        .slice(0, 1),
    )
    for (const pick of outside) {
      expect(
        await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick } }),
      ).toEqual({
        outcome: 'gone',
      })
    }
    expect(await deps.store.approvals.get(approval.id)).toMatchObject({ status: 'pending', wrongPicks: 0 })
    expect((await approvals.view(secret, 'browser'))?.status).toBe('pending')
  })

  it("a secret works only for its own kind: a browser's for the browser, CIBA's for CIBA", async () => {
    const { approval, secret } = await opened()
    await approvals.decide({ approvalId: approval.id, approver: trusted, answer: { pick: approval.code } })
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
