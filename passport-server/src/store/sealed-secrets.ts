import { isSealedSecret, type MasterKey, openSecret, sealSecret } from '../crypto/master-key.ts'
import type { SecretRepo, Store } from './types.ts'

/**
 * The store with its `secrets` sealed under the master key, outside transactions and inside
 * them (key rotation writes within one): every value is written sealed and opened on read.
 *
 * Migration: a value found in plaintext (a store from before sealing) is sealed in place the
 * first time it is read, which start-up does for every secret. A value this master key does
 * not open stops the start with a clear error rather than minting new keys over it.
 */
export function withSealedSecrets(store: Store, key: MasterKey): Store {
  return {
    ...store,
    secrets: sealedSecrets(store.secrets, key),
    transaction: (fn) => store.transaction((tx) => fn({ ...tx, secrets: sealedSecrets(tx.secrets, key) })),
  }
}

function sealedSecrets(inner: SecretRepo, key: MasterKey): SecretRepo {
  const open = async (name: string, stored: string): Promise<string> => {
    if (!isSealedSecret(stored)) {
      await inner.put(name, sealSecret(key, name, stored)) // plaintext from an older server
      return stored
    }
    const plaintext = openSecret(key, name, stored)
    if (plaintext === null) {
      throw new Error(
        `the master key does not open the stored secret "${name}": this database was sealed under another master key`,
      )
    }
    return plaintext
  }
  return {
    get: async (name) => {
      const stored = await inner.get(name)
      return stored === null ? null : open(name, stored)
    },
    putIfAbsent: async (name, value) =>
      open(name, await inner.putIfAbsent(name, sealSecret(key, name, value))),
    put: (name, value) => inner.put(name, sealSecret(key, name, value)),
  }
}
