// AES-256-GCM (node's OpenSSL) and HKDF in the layouts the contract uses:
// nonce (12) || ciphertext || tag (16) (docs/PROTOCOL.md §5).
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

import { concat } from "./bytes.js";

/** The ciphertext did not authenticate (wrong key, other AAD, or altered). */
export class AeadError extends Error {
  override name = "AeadError";
}

/** HKDF (RFC 5869) with `hash`; an empty `salt` is the absent salt (HashLen zero bytes). */
export function hkdf(hash: "sha256" | "sha512", ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync(hash, ikm, salt, info, length));
}

/** AES-256-GCM with an explicit 12-byte nonce: ciphertext || tag. */
export function gcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  const body = c.update(plaintext);
  c.final();
  return concat(body, c.getAuthTag());
}

/** Opens ciphertext || tag; throws {@link AeadError}. */
export function gcmOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  if (sealed.length < 16) throw new AeadError("ciphertext shorter than its tag");
  const d = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: 16 });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  const body = d.update(sealed.subarray(0, sealed.length - 16));
  try {
    d.final();
  } catch {
    throw new AeadError("ciphertext does not authenticate");
  }
  return new Uint8Array(body);
}

/** nonce (12, random unless given) || AES-256-GCM(key, nonce, plaintext, aad). */
export function sealWithNonce(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const n = nonce ?? new Uint8Array(randomBytes(12));
  return concat(n, gcmSeal(key, n, plaintext, aad));
}

/** Opens nonce || ciphertext || tag. */
export function openWithNonce(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  if (sealed.length < 28) throw new AeadError("sealed value shorter than nonce and tag");
  return gcmOpen(key, sealed.subarray(0, 12), sealed.subarray(12), aad);
}
