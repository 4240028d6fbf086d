import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import {
  masterKeyFrom,
  openSecret,
  parseMasterKey,
  readMasterKeyFile,
  readOrCreateMasterKeyFile,
  sealSecret,
} from './master-key.ts'

const dirs: string[] = []
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-master-key-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

describe('master key', () => {
  const bytes = randomBytes(32)

  test.each([
    ['base64', bytes.toString('base64')],
    ['base64url', bytes.toString('base64url')],
    ['hex', bytes.toString('hex')],
    ['base64 with a newline', `${bytes.toString('base64')}\n`],
  ])('reads 32 bytes written as %s', (_, text) => {
    expect(parseMasterKey(text).export()).toEqual(bytes)
  })

  test.each([
    ['16 bytes', randomBytes(16).toString('base64')],
    ['33 bytes', randomBytes(33).toString('hex')],
    ['a passphrase', 'correct horse battery staple'],
    ['nothing', ''],
  ])('refuses %s', (_, text) => {
    expect(() => parseMasterKey(text)).toThrow('32 random bytes')
  })

  test('seals under the key and the name: another key or another name opens nothing', () => {
    const key = parseMasterKey(bytes.toString('base64'))
    const other = parseMasterKey(randomBytes(32).toString('base64'))
    const sealed = sealSecret(key, 'authkey_key', 'the secret')
    expect(sealed).not.toContain('the secret')
    expect(openSecret(key, 'authkey_key', sealed)).toBe('the secret')
    expect(openSecret(other, 'authkey_key', sealed)).toBeNull()
    expect(openSecret(key, 'signing_keys', sealed)).toBeNull()
    expect(openSecret(key, 'authkey_key', `${sealed.slice(0, -2)}AA`)).toBeNull()
    expect(openSecret(key, 'authkey_key', 'the secret')).toBeNull()
  })

  test('the demo key file is made once, mode 0600, and read again on the next start', () => {
    const file = path.join(tempDir(), 'data', 'master.key')
    const first = readOrCreateMasterKeyFile(file)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(readOrCreateMasterKeyFile(file).export()).toEqual(first.export())
  })

  test('a key file other users can read is refused (chmod 600)', () => {
    const file = path.join(tempDir(), 'master.key')
    fs.writeFileSync(file, bytes.toString('base64'), { mode: 0o644 })
    fs.chmodSync(file, 0o644)
    expect(() => readMasterKeyFile(file)).toThrow('chmod 600')
  })

  test('from the environment: the value, or the file, never both; none is null', () => {
    const file = path.join(tempDir(), 'master.key')
    fs.writeFileSync(file, bytes.toString('hex'), { mode: 0o600 })
    expect(masterKeyFrom({ key: bytes.toString('base64') })?.export()).toEqual(bytes)
    expect(masterKeyFrom({ file })?.export()).toEqual(bytes)
    expect(masterKeyFrom({})).toBeNull()
    expect(() => masterKeyFrom({ key: bytes.toString('base64'), file })).toThrow('not both')
  })
})
