import { afterEach, beforeEach, expect, test, vi } from 'vitest'

/** The options `<script src=".../passport.js" data-…>` hands to `createPassport`. */
const createPassport = vi.fn((_options: unknown) => ({}))
vi.mock('./passport.ts', () => ({ createPassport }))

async function runScriptTag(dataset: Record<string, string>): Promise<unknown> {
  vi.resetModules()
  createPassport.mockClear()
  vi.stubGlobal('document', {
    currentScript: { dataset, src: 'https://passport.example.com/passport.js' },
  })
  vi.stubGlobal('window', {})
  await import('./script-tag.ts')
  return createPassport.mock.calls[0]?.[0]
}

beforeEach(() => vi.spyOn(console, 'error').mockImplementation(() => {}))
afterEach(() => {
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
})

test('a bare tag: the authkey, the passport origin from the src, and the defaults', async () => {
  expect(await runScriptTag({ authkey: 'k' })).toEqual({
    authkey: 'k',
    passportOrigin: 'https://passport.example.com',
    silent: true,
    fedcm: false,
    fedcmOnLoad: 'optional',
  })
})

test('data-redirect-uri, data-silent="false", data-fedcm="true", data-fedcm-on-load="silent"', async () => {
  expect(
    await runScriptTag({
      authkey: 'k',
      redirectUri: 'https://news.example/cb',
      silent: 'false',
      fedcm: 'true',
      fedcmOnLoad: 'silent',
    }),
  ).toMatchObject({
    redirectUri: 'https://news.example/cb',
    silent: false,
    fedcm: true,
    fedcmOnLoad: 'silent',
  })
})

test('a value other than the documented ones keeps the default', async () => {
  expect(
    await runScriptTag({ authkey: 'k', silent: 'no', fedcm: 'yes', fedcmOnLoad: 'never' }),
  ).toMatchObject({
    silent: true,
    fedcm: false,
    fedcmOnLoad: 'optional',
  })
})

test('no data-authkey: no passport, and the console says why', async () => {
  expect(await runScriptTag({})).toBeUndefined()
  expect(console.error).toHaveBeenCalledWith(expect.stringContaining('data-authkey'))
})
