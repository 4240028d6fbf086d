import { expect, signIn, status, test, urls } from './fixtures.ts'

test('b. evil.localhost embedding the News frame gets no token, no event, no detail', async ({
  browserContext,
}) => {
  // The victim is signed in on News in this browser.
  const news = await browserContext.newPage()
  await signIn(news, urls.news, 'alice', 'alice-password-1')
  await expect(status(news)).toHaveText('Signed in as alice')

  const evil = await browserContext.newPage()
  const frameApiCalls: string[] = []
  evil.on('request', (r) => {
    if (r.url().includes('/api/frame/')) frameApiCalls.push(r.url())
  })
  const frameResponse = evil.waitForResponse((r) => r.url().startsWith(`${urls.passport}/frame/news`))
  await evil.goto(urls.evil)
  // The passport refuses to be framed there: its CSP names News's origin only.
  const csp = (await frameResponse).headers()['content-security-policy']
  expect(csp).toContain(`frame-ancestors ${urls.news.slice(0, -1)};`)
  await evil.waitForFunction(() => (window as unknown as { attackDone?: boolean }).attackDone === true)
  await evil.waitForTimeout(1000)
  expect(await evil.evaluate(() => (window as unknown as { received: unknown[] }).received)).toEqual([])
  expect(frameApiCalls).toEqual([])
})
