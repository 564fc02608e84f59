// RFC 9497 OPRF and VOPRF proofs with ristretto255-SHA512, as protocol v2 uses them
// (docs/PROTOCOL.md §2, §4.1): HashToGroup, Blind, Finalize, DeriveKeyPair, the DLEQ
// proofs, and the Shamir split and Lagrange combination of the threshold OPRF.
import { ristretto255, ristretto255_hasher } from "@noble/curves/ed25519";
import { sha512 } from "@noble/hashes/sha2";
import { randomBytes } from "node:crypto";

import { concat, i2osp, leToScalar, scalarToLe, utf8 } from "./bytes.js";

/** The ristretto255 group element type. */
export type Element = InstanceType<typeof ristretto255.Point>;
const Point = ristretto255.Point;
/** The order of the ristretto255 group. */
export const ORDER = Point.Fn.ORDER;
const Fn = Point.Fn;

/** RFC 9497 mode: 0x00 OPRF, 0x01 VOPRF. */
export type Mode = 0 | 1;

/** `"OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"`. */
export function contextString(mode: Mode): Uint8Array {
  return concat(utf8("OPRFV1-"), i2osp(mode, 1), utf8("-ristretto255-SHA512"));
}

/** An invalid element or scalar in a message. */
export class EncodingError extends Error {
  override name = "EncodingError";
}

/** RFC 9497 HashToGroup (hash_to_ristretto255 with the mode's DST). */
export function hashToGroup(input: Uint8Array, mode: Mode = 0): Element {
  const dst = concat(utf8("HashToGroup-"), contextString(mode));
  return ristretto255_hasher.hashToCurve(input, { DST: dst }) as Element;
}

/** RFC 9497 HashToScalar with the mode's DST (or `dst` when given). */
export function hashToScalar(input: Uint8Array, mode: Mode = 0, dst?: Uint8Array): bigint {
  const d = dst ?? concat(utf8("HashToScalar-"), contextString(mode));
  return ristretto255_hasher.hashToScalar(input, { DST: d });
}

/** A 32-byte element encoding, refusing non-canonical encodings and the identity. */
export function decodeElement(bytes: Uint8Array, what = "element"): Element {
  if (bytes.length !== 32) throw new EncodingError(`${what}: must be 32 bytes, got ${bytes.length}`);
  let p: Element;
  try {
    p = Point.fromBytes(bytes) as Element;
  } catch {
    throw new EncodingError(`${what}: not a canonical ristretto255 encoding`);
  }
  if (p.equals(Point.ZERO)) throw new EncodingError(`${what}: the identity element`);
  return p;
}

/** A 32-byte little-endian scalar, refusing values at or above the group order. */
export function decodeScalar(bytes: Uint8Array, what = "scalar"): bigint {
  if (bytes.length !== 32) throw new EncodingError(`${what}: must be 32 bytes, got ${bytes.length}`);
  const s = leToScalar(bytes);
  if (s >= ORDER) throw new EncodingError(`${what}: not canonical`);
  return s;
}

/** The 32-byte little-endian encoding of a scalar. */
export function encodeScalar(s: bigint): Uint8Array {
  return scalarToLe(Fn.create(s));
}

/** A uniformly random nonzero scalar. */
export function randomScalar(): bigint {
  for (;;) {
    // 64 bytes reduced mod the order: bias below 2^-250.
    const s = Fn.create(leToScalar(randomBytes(64)));
    if (s !== 0n) return s;
  }
}

/** The basepoint times `s`. */
export function mulBase(s: bigint): Element {
  return Point.BASE.multiply(s) as Element;
}

/** RFC 9497 Blind: `blindedElement = blind * HashToGroup(input)`. */
export function blind(input: Uint8Array, r: bigint = randomScalar()): { blind: bigint; blinded: Element } {
  const p = hashToGroup(input);
  if (p.equals(Point.ZERO)) throw new EncodingError("input hashes to the identity");
  return { blind: r, blinded: p.multiply(r) as Element };
}

/** RFC 9497 Finalize for an unblinded element: SHA-512 of the length-prefixed input, element and "Finalize". */
export function finalizeUnblinded(input: Uint8Array, unblinded: Element): Uint8Array {
  const e = unblinded.toBytes();
  return sha512(concat(i2osp(input.length, 2), input, i2osp(e.length, 2), e, utf8("Finalize")));
}

/** RFC 9497 Finalize: unblinds `evaluated` with `blind` and hashes. */
export function finalize(input: Uint8Array, r: bigint, evaluated: Element): Uint8Array {
  return finalizeUnblinded(input, evaluated.multiply(Fn.inv(r)) as Element);
}

/** RFC 9497 DeriveKeyPair(seed, info) in OPRF mode: the secret scalar and public element. */
export function deriveKeyPair(seed: Uint8Array, info: Uint8Array, mode: Mode = 0): { sk: bigint; pk: Element } {
  const deriveInput = concat(seed, i2osp(info.length, 2), info);
  const dst = concat(utf8("DeriveKeyPair"), contextString(mode));
  for (let counter = 0; counter <= 255; counter++) {
    const sk = hashToScalar(concat(deriveInput, i2osp(counter, 1)), mode, dst);
    if (sk !== 0n) return { sk, pk: mulBase(sk) };
  }
  throw new Error("DeriveKeyPair: no key after 256 tries");
}

function lengthPrefixed(b: Uint8Array): Uint8Array {
  return concat(i2osp(b.length, 2), b);
}

/** RFC 9497 ComputeComposites for one (C, D) pair, VOPRF mode. */
function composites(B: Element, C: Element, D: Element): { M: Element; Z: Element } {
  const ctx = contextString(1);
  const Bm = B.toBytes();
  const seedDst = concat(utf8("Seed-"), ctx);
  const seed = sha512(concat(lengthPrefixed(Bm), lengthPrefixed(seedDst)));
  const transcript = concat(
    lengthPrefixed(seed),
    i2osp(0, 2),
    lengthPrefixed(C.toBytes()),
    lengthPrefixed(D.toBytes()),
    utf8("Composite"),
  );
  const d = hashToScalar(transcript, 1);
  return { M: C.multiply(d) as Element, Z: D.multiply(d) as Element };
}

function challenge(B: Element, M: Element, Z: Element, t2: Element, t3: Element): bigint {
  const transcript = concat(
    lengthPrefixed(B.toBytes()),
    lengthPrefixed(M.toBytes()),
    lengthPrefixed(Z.toBytes()),
    lengthPrefixed(t2.toBytes()),
    lengthPrefixed(t3.toBytes()),
    utf8("Challenge"),
  );
  return hashToScalar(transcript, 1);
}

/**
 * RFC 9497 GenerateProof(k, A = G, B = k*G, C = [c], D = [k*c]) in VOPRF mode, with the
 * random scalar `r`: `c || s`, 64 bytes. The vault's nodes make these; the SDK uses it
 * only in tests.
 */
export function generateProof(k: bigint, B: Element, C: Element, D: Element, r: bigint): Uint8Array {
  const { M } = composites(B, C, D);
  const Z = M.multiply(k) as Element;
  const t2 = mulBase(r);
  const t3 = M.multiply(r) as Element;
  const c = challenge(B, M, Z, t2, t3);
  const s = Fn.sub(r, Fn.mul(c, k));
  return concat(encodeScalar(c), encodeScalar(s));
}

/** RFC 9497 VerifyProof(G, B, [C], [D], proof) in VOPRF mode. */
export function verifyProof(B: Element, C: Element, D: Element, proof: Uint8Array): boolean {
  if (proof.length !== 64) return false;
  let c: bigint;
  let s: bigint;
  try {
    c = decodeScalar(proof.subarray(0, 32));
    s = decodeScalar(proof.subarray(32, 64));
  } catch {
    return false;
  }
  const { M, Z } = composites(B, C, D);
  // t2 = s*G + c*B, t3 = s*M + c*Z (public values: variable-time multiplication, zero allowed).
  const t2 = mulUnsafe(Point.BASE as Element, s).add(mulUnsafe(B, c)) as Element;
  const t3 = mulUnsafe(M, s).add(mulUnsafe(Z, c)) as Element;
  return challenge(B, M, Z, t2, t3) === c;
}

/** `p * s` allowing `s = 0` (public values only). */
function mulUnsafe(p: Element, s: bigint): Element {
  return p.multiplyUnsafe(s) as Element;
}

/** The Shamir split of `k` with threshold `t` at the nonzero points `xs`: `f(x_i)` each. */
export function splitKey(k: bigint, t: number, xs: bigint[], coefficients?: bigint[]): bigint[] {
  if (t < 1 || t > xs.length) throw new RangeError(`threshold ${t} with ${xs.length} holders`);
  const coeffs = coefficients ?? Array.from({ length: t - 1 }, () => randomScalar());
  if (coeffs.length !== t - 1) throw new RangeError("need threshold - 1 coefficients");
  return xs.map((x) => {
    // Horner: f(x) = k + c1 x + ... + c_{t-1} x^{t-1}
    let acc = 0n;
    for (let i = coeffs.length - 1; i >= 0; i--) acc = Fn.mul(Fn.add(acc, coeffs[i] as bigint), x);
    return Fn.add(acc, k);
  });
}

/** Lagrange coefficients at 0 over the distinct nonzero points `xs`: `Π_{j≠i} x_j / (x_j − x_i)`. */
export function lagrangeAtZero(xs: bigint[]): bigint[] {
  return xs.map((xi, i) => {
    let num = 1n;
    let den = 1n;
    xs.forEach((xj, j) => {
      if (j === i) return;
      num = Fn.mul(num, xj);
      den = Fn.mul(den, Fn.sub(xj, xi));
    });
    return Fn.mul(num, Fn.inv(den));
  });
}

/** Lagrange basis polynomial `L_i(x)` over `xs`, evaluated at `x`. */
function lagrangeAt(xs: bigint[], i: number, x: bigint): bigint {
  let num = 1n;
  let den = 1n;
  const xi = xs[i] as bigint;
  xs.forEach((xj, j) => {
    if (j === i) return;
    num = Fn.mul(num, Fn.sub(x, xj));
    den = Fn.mul(den, Fn.sub(xi, xj));
  });
  return Fn.mul(num, Fn.inv(den));
}

/**
 * Whether the commitments lie on one polynomial of degree `t - 1`: every commitment past
 * the first `t` equals the combination of the first `t` at its point. Returns the first
 * node id that does not, or `undefined` when all do.
 */
export function inconsistentCommitment(t: number, items: { nodeId: bigint; commitment: Element }[]): bigint | undefined {
  const base = items.slice(0, t);
  const xs = base.map((b) => b.nodeId);
  for (const item of items.slice(t)) {
    let sum = Point.ZERO as Element;
    base.forEach((b, i) => {
      sum = sum.add(mulUnsafe(b.commitment, lagrangeAt(xs, i, item.nodeId))) as Element;
    });
    if (!sum.equals(item.commitment)) return item.nodeId;
  }
  return undefined;
}

/** Σ λ_i · Z_i. */
export function combine(coefficients: bigint[], elements: Element[]): Element {
  let sum = Point.ZERO as Element;
  elements.forEach((z, i) => {
    sum = sum.add(mulUnsafe(z, coefficients[i] as bigint)) as Element;
  });
  return sum;
}

/** The OPRF input of protocol v2: `I2OSP(len(account), 2) || account || password`. */
export function oprfInput(account: Uint8Array, password: Uint8Array): Uint8Array {
  return concat(i2osp(account.length, 2), account, password);
}
