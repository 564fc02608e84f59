// The signed share map (docs/PROTOCOL.md §3.2) and the encryption of an OPRF key share to
// its holder's P-256 share-receiving key (§3.3).
import { ed25519 } from "@noble/curves/ed25519";
import { createECDH, createPublicKey } from "node:crypto";

import { hkdf, openWithNonce, sealWithNonce } from "./aead.js";
import { concat, i2osp, os2ip, utf8 } from "./bytes.js";

/** A share map that fails a check: the client must not go on with it. */
export class ShareMapError extends Error {
  override name = "ShareMapError";
}

/** One holder of the share map. */
export interface Holder {
  nodeId: bigint;
  /** SEC1 uncompressed P-256 point, 65 bytes. */
  receiveKey: Uint8Array;
}

/** A verified share map. */
export interface ShareMap {
  clusterName: string;
  epoch: bigint;
  threshold: number;
  holders: Holder[];
}

const MAP_TAG = utf8("bkv/v2/share-map");

/** Whether `key` is a valid uncompressed P-256 point (on the curve; OpenSSL checks). */
export function isP256Point(key: Uint8Array): boolean {
  if (key.length !== 65 || key[0] !== 0x04) return false;
  try {
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64url");
    createPublicKey({ key: { kty: "EC", crv: "P-256", x: b64(key.subarray(1, 33)), y: b64(key.subarray(33, 65)) }, format: "jwk" });
    return true;
  } catch {
    return false;
  }
}

/** ECDH on P-256 with node's OpenSSL: our public key (65 bytes) and the x-coordinate Z. */
function p256Agree(secret: Uint8Array | undefined, peer: Uint8Array): { publicKey: Uint8Array; z: Uint8Array } {
  const ecdh = createECDH("prime256v1");
  if (secret) ecdh.setPrivateKey(secret);
  else ecdh.generateKeys();
  return { publicKey: new Uint8Array(ecdh.getPublicKey()), z: new Uint8Array(ecdh.computeSecret(peer)) };
}

/**
 * Checks a signed share map against the pinned identity key and the cluster name, and
 * parses it: signature (strict Ed25519), encoding, name, epoch, size, node ids, threshold,
 * receive keys.
 */
export function verifyShareMap(encoded: Uint8Array, signature: Uint8Array, identityKey: Uint8Array, clusterName: string): ShareMap {
  let ok = false;
  try {
    ok = signature.length === 64 && ed25519.verify(signature, encoded, identityKey, { zip215: false });
  } catch {
    ok = false;
  }
  if (!ok) throw new ShareMapError("share map signature does not verify with the pinned identity key");
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (at + n > encoded.length) throw new ShareMapError("share map encoding is truncated");
    const out = encoded.subarray(at, at + n);
    at += n;
    return out;
  };
  const tag = take(MAP_TAG.length);
  if (Buffer.compare(tag, MAP_TAG) !== 0) throw new ShareMapError("share map does not start with bkv/v2/share-map");
  const nameLen = Number(os2ip(take(2)));
  const name = Buffer.from(take(nameLen)).toString("utf8");
  if (name !== clusterName) throw new ShareMapError(`share map is for cluster ${JSON.stringify(name)}, not ${JSON.stringify(clusterName)}`);
  const epoch = os2ip(take(8));
  if (epoch < 1n) throw new ShareMapError("share map epoch is 0");
  const threshold = Number(os2ip(take(2)));
  const n = Number(os2ip(take(2)));
  if (n < 1 || n > 64) throw new ShareMapError(`share map has ${n} holders (1 to 64 allowed)`);
  if (threshold !== Math.floor(n / 2) + 1) throw new ShareMapError(`share map threshold ${threshold} is not floor(${n}/2)+1`);
  const holders: Holder[] = [];
  let last = 0n;
  for (let i = 0; i < n; i++) {
    const nodeId = os2ip(take(8));
    const receiveKey = Uint8Array.from(take(65));
    if (nodeId === 0n || nodeId <= last) throw new ShareMapError("share map node ids are not nonzero and strictly increasing");
    if (!isP256Point(receiveKey)) throw new ShareMapError(`share map key of node ${nodeId} is not a P-256 point`);
    last = nodeId;
    holders.push({ nodeId, receiveKey });
  }
  if (at !== encoded.length) throw new ShareMapError("share map has trailing bytes");
  return { clusterName: name, epoch, threshold, holders };
}

/** The share context of §3.3. */
export function shareContext(
  clusterName: Uint8Array,
  account: Uint8Array,
  nodeId: bigint,
  guessLimit: number,
  resetPublicKey: Uint8Array,
  commitment: Uint8Array,
): Uint8Array {
  return concat(
    utf8("bkv/v2/share"),
    i2osp(clusterName.length, 2),
    clusterName,
    i2osp(account.length, 2),
    account,
    i2osp(nodeId, 8),
    i2osp(guessLimit, 4),
    resetPublicKey,
    commitment,
  );
}

function shareKey(ephemeralPublic: Uint8Array, recipient: Uint8Array, z: Uint8Array, context: Uint8Array): Uint8Array {
  return hkdf("sha256", z, concat(ephemeralPublic, recipient), concat(utf8("bkv/v2/share-key"), context), 32);
}

/**
 * Encrypts a 32-byte share to `recipient` (65-byte P-256 point): E (65) || nonce (12) ||
 * AES-256-GCM(share, aad = context), 125 bytes. `ephemeralSecret` and `nonce` are for the
 * test vectors.
 */
export function encryptShare(recipient: Uint8Array, share: Uint8Array, context: Uint8Array, ephemeralSecret?: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const { publicKey: E, z } = p256Agree(ephemeralSecret, recipient);
  const key = shareKey(E, recipient, z, context);
  return concat(E, sealWithNonce(key, share, context, nonce));
}

/** Opens a share ciphertext with the recipient's secret key (the node's side, for tests). */
export function decryptShare(recipientSecret: Uint8Array, ciphertext: Uint8Array, context: Uint8Array): Uint8Array {
  const E = ciphertext.subarray(0, 65);
  const { publicKey: recipient, z } = p256Agree(recipientSecret, E);
  return openWithNonce(shareKey(E, recipient, z, context), ciphertext.subarray(65), context);
}
