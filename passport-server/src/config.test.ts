import { describe, expect, it } from 'vitest'
import { defaults, type PassportOptions, resolveConfig } from './config.ts'

const issuer = 'https://passport.example.com'

describe('resolveConfig', () => {
  it('fills in every default', () => {
    expect(resolveConfig({ issuer })).toEqual({
      issuer,
      sessionTtlSeconds: 30 * 24 * 3600,
      sessionIdleSeconds: 7 * 24 * 3600,
      codeTtlSeconds: 60,
      refreshGraceSeconds: 10,
      maxBodyBytes: 16 * 1024,
      scryptCost: 2 ** 15,
      scramIterations: 600_000,
      passwordForm: true,
      liveValidationSecret: '',
      liveMaxConnections: 15_000,
      dpopNonceRequired: true,
      assetsDir: defaults.assetsDir,
      trustedProxies: [],
      databaseUrl: '',
      databasePoolSize: 10,
      redisUrl: '',
      redisKeyPrefix: 'passport:',
      auditRetentionDays: 90,
    })
    expect(defaults.assetsDir).toMatch(/\/dist\/passport\/$/)
  })

  it('keeps the values it is given', () => {
    const options: PassportOptions = {
      issuer: 'http://passport.localhost:8080',
      sessionTtlSeconds: 3600,
      sessionIdleSeconds: 600,
      codeTtlSeconds: 30,
      refreshGraceSeconds: 5,
      maxBodyBytes: 1024,
      scryptCost: 1024,
      scramIterations: 10_000,
      passwordForm: false,
      liveValidationSecret: 'x'.repeat(32),
      liveMaxConnections: 100,
      dpopNonceRequired: false,
      assetsDir: '/srv/passport/',
      trustedProxies: ['10.0.0.1', 'fd00::/8'],
      databaseUrl: 'postgres://passport@db.internal:5432/passport',
      databasePoolSize: 20,
      redisUrl: 'redis://127.0.0.1:6379/2',
      redisKeyPrefix: 'sso:',
      auditRetentionDays: 30,
    }
    expect(resolveConfig(options)).toEqual(options)
  })

  it('returns a frozen object and leaves the input alone', () => {
    const options = { issuer }
    const config = resolveConfig(options)
    expect(Object.isFrozen(config)).toBe(true)
    expect(() => {
      ;(config as { codeTtlSeconds: number }).codeTtlSeconds = 1
    }).toThrow(TypeError)
    expect(options).toEqual({ issuer })
  })

  it.each([
    '',
    'passport.example.com',
    'https://passport.example.com/',
    'https://passport.example.com/sso',
    'https://*.example.com',
    'https://user:pw@passport.example.com',
    'https://passport.example.com:443',
    'https://PASSPORT.example.com',
    'ftp://passport.example.com',
    'null',
  ])('rejects the issuer %j', (bad) => {
    expect(() => resolveConfig({ issuer: bad })).toThrow(/issuer must be an exact origin/)
  })

  it.each(['sessionTtlSeconds', 'codeTtlSeconds', 'maxBodyBytes', 'scryptCost'] as const)(
    'rejects a %s that is not a positive integer',
    (key) => {
      for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '60' as unknown as number]) {
        expect(() => resolveConfig({ issuer, [key]: bad }), `${key}=${String(bad)}`).toThrow(
          `${key} must be a positive integer`,
        )
      }
    },
  )

  it.each([1000, 3, 1])('rejects an scryptCost of %d, which is not a power of two above 1', (bad) => {
    expect(() => resolveConfig({ issuer, scryptCost: bad })).toThrow('scryptCost must be a power of two')
  })

  it('refuses a live validation secret shorter than 32 characters', () => {
    expect(() => resolveConfig({ issuer, liveValidationSecret: 'short' })).toThrow('liveValidationSecret')
  })

  it('takes a redis:// or rediss:// URL for the shared Redis, and nothing else', () => {
    expect(resolveConfig({ issuer, redisUrl: 'rediss://:pw@redis.internal:6380/1' }).redisUrl).toMatch(
      /^rediss:/,
    )
    expect(() => resolveConfig({ issuer, redisUrl: 'http://redis.internal' })).toThrow('redisUrl')
    expect(() => resolveConfig({ issuer, redisUrl: 'redis.internal:6379' })).toThrow('redisUrl')
  })
})
