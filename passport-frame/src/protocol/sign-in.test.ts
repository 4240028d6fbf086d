import { describe, expect, it } from 'vitest'
import { newPasswordProblem } from './sign-in.ts'

/** The account page's own check of a new password (the passport never sees it: issue 16). */
describe('newPasswordProblem', () => {
  const context = { username: 'alice', current: 'old-secret-words-1' }
  it('accepts a long enough password unlike the username and the current one', () => {
    expect(newPasswordProblem('violet-harbor-lantern-7', context)).toBeNull()
  })
  it.each([
    ['too_short', 'short12'],
    ['too_long', 'x'.repeat(1025)],
    ['same_as_username', 'my-Alice-password'],
    ['same_as_current', 'old-secret-words-1'],
  ])('refuses %s', (problem, password) => {
    expect(newPasswordProblem(password, context)).toBe(problem)
  })
  it('counts characters after NFKC, not UTF-16 units', () => {
    expect(newPasswordProblem('🔑🔑🔑🔑🔑🔑🔑', context)).toBe('too_short')
    expect(newPasswordProblem('🔑🔑🔑🔑🔑🔑🔑🔑', context)).toBeNull()
  })
})
