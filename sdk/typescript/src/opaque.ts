// The client side of OPAQUE (RFC 9807, OPAQUE-3DH) exactly as bkv configures it, built on
// RFC 9497 primitives and compatible with opaque-ke 4 (docs/PROTOCOL.md §2): ristretto255,
// SHA-512, HKDF-SHA512, HMAC-SHA512, Argon2id as the key-stretching function, credential
// identifier and client identity = the account id, server identity unset (the server's
// public key), context "bkv/v2".
import { argon2idAsync } from "@noble/hashes/argon2";
import { expand, extract } from "@noble/hashes/hkdf";
import { hmac } from "@noble/hashes/hmac";
import { sha512 } from "@noble/hashes/sha2";
import { randomBytes } from "node:crypto";

import { concat, ctEqual, i2osp, utf8, wipe } from "./bytes.js";
import { blind, decodeElement, deriveKeyPair, type Element, finalize, mulBase, randomScalar } from "./oprf.js";

/** The 3DH preamble's context: the 6 ASCII bytes "bkv/v2". */
export const CONTEXT = utf8("bkv/v2");
const NN = 32;
const NH = 64;
const NPK = 32;

/** Argon2id parameters (version 0x13): memory in KiB, passes, lanes. */
export interface KsfParams {
  mCostKib: number;
  tCost: number;
  pCost: number;
}

/** The Rust SDK's defaults (m = 19456 KiB, t = 2, p = 1). */
export const DEFAULT_KSF: KsfParams = { mCostKib: 19456, tCost: 2, pCost: 1 };
/** Light parameters for tests only (8 KiB, 1 pass, 1 lane): never for a real password. */
export const LIGHT_KSF: KsfParams = { mCostKib: 8, tCost: 1, pCost: 1 };

/** Checks parameters against Argon2's ranges and the vault's limits. */
export function checkKsf(k: KsfParams): void {
  const ok =
    Number.isInteger(k.mCostKib) &&
    Number.isInteger(k.tCost) &&
    Number.isInteger(k.pCost) &&
    k.pCost >= 1 &&
    k.pCost <= 16 &&
    k.tCost >= 1 &&
    k.tCost <= 64 &&
    k.mCostKib >= 8 * k.pCost &&
    k.mCostKib <= 1048576;
  if (!ok) throw new RangeError("Argon2id parameters out of range (m 8p..1048576 KiB, t 1..64, p 1..16)");
}

/** The login failed: the password (hardened password) is wrong, or the server is not the one registered. */
export class LoginFailed extends Error {
  override name = "LoginFailed";
}

async function stretch(oprfOutput: Uint8Array, ksf: KsfParams): Promise<Uint8Array> {
  checkKsf(ksf);
  return argon2idAsync(oprfOutput, new Uint8Array(16), {
    m: ksf.mCostKib,
    t: ksf.tCost,
    p: ksf.pCost,
    dkLen: 64,
    version: 0x13,
  });
}

/** `randomized_password = HKDF-Extract("", oprf_output || Argon2id(oprf_output))`. */
export async function randomizedPassword(oprfOutput: Uint8Array, ksf: KsfParams): Promise<Uint8Array> {
  const stretched = await stretch(oprfOutput, ksf);
  const rp = extract(sha512, concat(oprfOutput, stretched), new Uint8Array(0));
  wipe(stretched);
  return rp;
}

function hkdfExpand(prk: Uint8Array, info: Uint8Array, len: number): Uint8Array {
  return expand(sha512, prk, info, len);
}

function mac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  return hmac(sha512, key, msg);
}

/** RFC 9807 DeriveDiffieHellmanKeyPair. */
export function deriveDhKeyPair(seed: Uint8Array): { sk: bigint; pk: Element } {
  return deriveKeyPair(seed, utf8("OPAQUE-DeriveDiffieHellmanKeyPair"));
}

function cleartextCredentials(serverPk: Uint8Array, clientPk: Uint8Array, serverId: Uint8Array | null, clientId: Uint8Array | null): Uint8Array {
  const s = serverId ?? serverPk;
  const c = clientId ?? clientPk;
  return concat(serverPk, i2osp(s.length, 2), s, i2osp(c.length, 2), c);
}

/** What the envelope gives: keys derived from the randomized password and a nonce. */
function envelopeKeys(rp: Uint8Array, nonce: Uint8Array) {
  const authKey = hkdfExpand(rp, concat(nonce, utf8("AuthKey")), NH);
  const exportKey = hkdfExpand(rp, concat(nonce, utf8("ExportKey")), NH);
  const seed = hkdfExpand(rp, concat(nonce, utf8("PrivateKey")), 32);
  const kp = deriveDhKeyPair(seed);
  wipe(seed);
  return { authKey, exportKey, clientSk: kp.sk, clientPk: kp.pk.toBytes() };
}

/** Random inputs of a registration, explicit for the test vectors. */
export interface RegistrationRandomness {
  blind?: bigint;
  envelopeNonce?: Uint8Array;
}

/** A registration in progress (after the RegistrationRequest). */
export class ClientRegistration {
  private constructor(
    private readonly password: Uint8Array,
    private readonly blindScalar: bigint,
    /** The RegistrationRequest (32 bytes). */
    readonly request: Uint8Array,
  ) {}

  /** Starts a registration for `password` (protocol v2: the hardened password). */
  static start(password: Uint8Array, rnd: RegistrationRandomness = {}): ClientRegistration {
    const b = blind(password, rnd.blind ?? randomScalar());
    return new ClientRegistration(Uint8Array.from(password), b.blind, b.blinded.toBytes());
  }

  /**
   * Finishes with the server's RegistrationResponse (64 bytes): the RegistrationUpload
   * (192 bytes) and the export key (64 bytes).
   */
  async finish(
    response: Uint8Array,
    clientIdentity: Uint8Array,
    ksf: KsfParams,
    rnd: RegistrationRandomness = {},
  ): Promise<{ upload: Uint8Array; exportKey: Uint8Array }> {
    if (response.length !== 64) throw new LoginFailed(`registration response: must be 64 bytes, got ${response.length}`);
    const evaluated = decodeElement(response.subarray(0, 32), "registration_response.evaluated_element");
    const serverPk = response.slice(32, 64);
    decodeElement(serverPk, "registration_response.server_public_key");
    const oprfOutput = finalize(this.password, this.blindScalar, evaluated);
    const rp = await randomizedPassword(oprfOutput, ksf);
    const nonce = rnd.envelopeNonce ?? new Uint8Array(randomBytes(NN));
    const maskingKey = hkdfExpand(rp, utf8("MaskingKey"), NH);
    const keys = envelopeKeys(rp, nonce);
    const creds = cleartextCredentials(serverPk, keys.clientPk, null, clientIdentity);
    const authTag = mac(keys.authKey, concat(nonce, creds));
    const upload = concat(keys.clientPk, maskingKey, nonce, authTag);
    wipe(oprfOutput, rp, maskingKey, keys.authKey, this.password);
    return { upload, exportKey: keys.exportKey };
  }
}

/** Random inputs of a login, explicit for the test vectors. */
export interface LoginRandomness {
  blind?: bigint;
  clientNonce?: Uint8Array;
  clientKeyshareSeed?: Uint8Array;
}

/** A login in progress (after KE1). */
export class ClientLogin {
  private constructor(
    private readonly password: Uint8Array,
    private readonly blindScalar: bigint,
    private readonly ephemeralSk: bigint,
    /** KE1, the CredentialRequest (96 bytes). */
    readonly request: Uint8Array,
  ) {}

  /** Starts a login for `password` (protocol v2: the hardened password). */
  static start(password: Uint8Array, rnd: LoginRandomness = {}): ClientLogin {
    const b = blind(password, rnd.blind ?? randomScalar());
    const nonce = rnd.clientNonce ?? new Uint8Array(randomBytes(NN));
    const seed = rnd.clientKeyshareSeed ?? new Uint8Array(randomBytes(32));
    const eph = deriveDhKeyPair(seed);
    const ke1 = concat(b.blinded.toBytes(), nonce, eph.pk.toBytes());
    return new ClientLogin(Uint8Array.from(password), b.blind, eph.sk, ke1);
  }

  /**
   * Finishes with KE2 (320 bytes): KE3 (64 bytes), the session key and the export key (64
   * bytes each). Throws {@link LoginFailed} when the envelope does not open (a wrong
   * password) or the server's MAC does not verify.
   */
  async finish(
    ke2: Uint8Array,
    clientIdentity: Uint8Array,
    ksf: KsfParams,
    context: Uint8Array = CONTEXT,
  ): Promise<{ finalization: Uint8Array; sessionKey: Uint8Array; exportKey: Uint8Array }> {
    if (ke2.length !== 320) throw new LoginFailed(`credential response: must be 320 bytes, got ${ke2.length}`);
    const evaluated = decodeElement(ke2.subarray(0, 32), "credential_response.evaluated_element");
    const maskingNonce = ke2.subarray(32, 64);
    const masked = ke2.subarray(64, 192);
    const credentialResponse = ke2.subarray(0, 192);
    const serverNonce = ke2.subarray(192, 224);
    const serverKeyshare = ke2.subarray(224, 256);
    const serverMac = ke2.subarray(256, 320);

    const oprfOutput = finalize(this.password, this.blindScalar, evaluated);
    const rp = await randomizedPassword(oprfOutput, ksf);
    const maskingKey = hkdfExpand(rp, utf8("MaskingKey"), NH);
    const pad = hkdfExpand(maskingKey, concat(maskingNonce, utf8("CredentialResponsePad")), NPK + NN + NH);
    const plain = masked.map((b, i) => b ^ (pad[i] as number));
    const serverPk = plain.subarray(0, 32);
    const envNonce = plain.subarray(32, 64);
    const authTag = plain.subarray(64, 128);
    const keys = envelopeKeys(rp, envNonce);
    const creds = cleartextCredentials(serverPk, keys.clientPk, null, clientIdentity);
    const expectedTag = mac(keys.authKey, concat(envNonce, creds));
    wipe(oprfOutput, rp, maskingKey, pad, keys.authKey);
    if (!ctEqual(expectedTag, authTag)) {
      throw new LoginFailed("the envelope does not open: wrong password");
    }
    let serverPkE: Element;
    let serverKeyshareE: Element;
    try {
      serverPkE = decodeElement(serverPk, "server public key");
      serverKeyshareE = decodeElement(serverKeyshare, "server key share");
    } catch (e) {
      throw new LoginFailed(`credential response: ${(e as Error).message}`);
    }
    const dh1 = serverKeyshareE.multiply(this.ephemeralSk).toBytes();
    const dh2 = serverPkE.multiply(this.ephemeralSk).toBytes();
    const dh3 = serverKeyshareE.multiply(keys.clientSk).toBytes();
    const ikm = concat(dh1, dh2, dh3);
    const serverId = serverPk;
    const preamble = concat(
      utf8("OPAQUEv1-"),
      i2osp(context.length, 2),
      context,
      i2osp(clientIdentity.length, 2),
      clientIdentity,
      this.request,
      i2osp(serverId.length, 2),
      serverId,
      credentialResponse,
      serverNonce,
      serverKeyshare,
    );
    const preambleHash = sha512(preamble);
    const prk = extract(sha512, ikm, new Uint8Array(0));
    const handshakeSecret = expandLabel(prk, "HandshakeSecret", preambleHash, 64);
    const sessionKey = expandLabel(prk, "SessionKey", preambleHash, 64);
    const km2 = expandLabel(handshakeSecret, "ServerMAC", new Uint8Array(0), 64);
    const km3 = expandLabel(handshakeSecret, "ClientMAC", new Uint8Array(0), 64);
    const expectedServerMac = mac(km2, preambleHash);
    wipe(ikm, prk, handshakeSecret, km2, dh1, dh2, dh3, this.password);
    if (!ctEqual(expectedServerMac, serverMac)) {
      wipe(sessionKey, km3, keys.exportKey);
      throw new LoginFailed("the server's MAC does not verify");
    }
    const finalization = mac(km3, sha512(concat(preamble, expectedServerMac)));
    wipe(km3);
    return { finalization, sessionKey, exportKey: keys.exportKey };
  }
}

/** RFC 9807 Expand-Label. */
function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const full = utf8(`OPAQUE-${label}`);
  const info = concat(i2osp(length, 2), i2osp(full.length, 1), full, i2osp(context.length, 1), context);
  return hkdfExpand(secret, info, length);
}

/** The client's public key from a seed, for tests. */
export function publicKeyOf(sk: bigint): Uint8Array {
  return mulBase(sk).toBytes();
}
