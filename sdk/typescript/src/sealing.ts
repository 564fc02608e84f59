// The sealed backup key, the transported key and the reset key of protocol v2
// (docs/PROTOCOL.md §3.1 steps 5-6, §4 steps 6-7, §5).
import { ed25519 } from "@noble/curves/ed25519";

import { hkdf, openWithNonce, sealWithNonce } from "./aead.js";
import { concat, i2osp, utf8, wipe } from "./bytes.js";

const NO_SALT = new Uint8Array(0);

/** `HKDF-SHA512(salt = none, export_key, "bkv/backup-key/v1", 32)`. */
export function sealedKeyKey(exportKey: Uint8Array): Uint8Array {
  return hkdf("sha512", exportKey, NO_SALT, utf8("bkv/backup-key/v1"), 32);
}

/** `HKDF-SHA512(salt = none, session_key, "bkv/transport/v1", 32)`. */
export function transportKey(sessionKey: Uint8Array): Uint8Array {
  return hkdf("sha512", sessionKey, NO_SALT, utf8("bkv/transport/v1"), 32);
}

/** Seals K for the vault: nonce || AES-256-GCM(key, K, aad = account), 60 bytes. */
export function sealKey(exportKey: Uint8Array, account: Uint8Array, backupKey: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const k = sealedKeyKey(exportKey);
  const out = sealWithNonce(k, backupKey, account, nonce);
  wipe(k);
  return out;
}

/** Opens a sealed key with the export key: K. */
export function openSealedKey(exportKey: Uint8Array, account: Uint8Array, sealed: Uint8Array): Uint8Array {
  const k = sealedKeyKey(exportKey);
  try {
    return openWithNonce(k, sealed, account);
  } finally {
    wipe(k);
  }
}

/** The AAD of the transported key: account || I2OSP(version, 8). */
export function transportAad(account: Uint8Array, version: bigint): Uint8Array {
  return concat(account, i2osp(version, 8));
}

/** Seals `sealed_key` for a login session (the vault's side, for tests). */
export function transportSeal(sessionKey: Uint8Array, account: Uint8Array, version: bigint, sealedKey: Uint8Array, nonce?: Uint8Array): Uint8Array {
  return sealWithNonce(transportKey(sessionKey), sealedKey, transportAad(account, version), nonce);
}

/** Opens `transported_key` with the session key: `sealed_key`. */
export function openTransported(sessionKey: Uint8Array, account: Uint8Array, version: bigint, transported: Uint8Array): Uint8Array {
  const k = transportKey(sessionKey);
  try {
    return openWithNonce(k, transported, transportAad(account, version));
  } finally {
    wipe(k);
  }
}

/** The reset key's Ed25519 seed: `HKDF-SHA512(salt = none, export_key, "bkv/v2/reset-key", 32)`. */
export function resetSeed(exportKey: Uint8Array): Uint8Array {
  return hkdf("sha512", exportKey, NO_SALT, utf8("bkv/v2/reset-key"), 32);
}

/** The reset public key (32 bytes). */
export function resetPublicKey(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

/** `"bkv/v2/reset" || I2OSP(len(cluster),2) || cluster || I2OSP(len(account),2) || account || I2OSP(version,8) || I2OSP(charge,8)`. */
export function resetMessage(cluster: Uint8Array, account: Uint8Array, version: bigint, charge: bigint): Uint8Array {
  return concat(
    utf8("bkv/v2/reset"),
    i2osp(cluster.length, 2),
    cluster,
    i2osp(account.length, 2),
    account,
    i2osp(version, 8),
    i2osp(charge, 8),
  );
}

/** The reset signature (64 bytes). */
export function signReset(seed: Uint8Array, cluster: Uint8Array, account: Uint8Array, version: bigint, charge: bigint): Uint8Array {
  return ed25519.sign(resetMessage(cluster, account, version, charge), seed);
}
