// The threshold OPRF of protocol v2 against testdata/vectors/oprf-v2.json, byte for byte.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, toHex, utf8 } from "../src/bytes.js";
import {
  blind,
  combine,
  contextString,
  decodeElement,
  decodeScalar,
  encodeScalar,
  finalize,
  finalizeUnblinded,
  generateProof,
  hashToGroup,
  inconsistentCommitment,
  lagrangeAtZero,
  mulBase,
  oprfInput,
  splitKey,
  verifyProof,
} from "../src/oprf.js";
import { vectors } from "./vectors.js";

const v = vectors("oprf-v2.json");

test("context strings and DSTs", () => {
  assert.equal(toHex(contextString(0)), v.encodings.context_string_oprf);
  assert.equal(toHex(contextString(1)), v.encodings.context_string_voprf);
});

test("hardened password: input, HashToGroup, evaluation, Finalize", () => {
  const h = v.hardened_password;
  const input = oprfInput(utf8(h.account), utf8(h.password_utf8));
  assert.equal(toHex(input), h.oprf_input);
  const p = hashToGroup(input);
  assert.equal(toHex(p.toBytes()), h.input_element);
  const k = decodeScalar(fromHex(h.oprf_key));
  const u = p.multiply(k);
  assert.equal(toHex(u.toBytes()), h.unblinded_element);
  assert.equal(toHex(finalizeUnblinded(input, u)), h.hardened_password);
});

test("Shamir split and commitments", () => {
  const s = v.shamir_split;
  const k = decodeScalar(fromHex(s.oprf_key));
  const coeffs = s.coefficients.map((c: string) => decodeScalar(fromHex(c)));
  const xs = s.shares.map((x: { node_id: number }) => BigInt(x.node_id));
  const shares = splitKey(k, s.threshold, xs, coeffs);
  s.shares.forEach((want: { share: string; commitment: string }, i: number) => {
    assert.equal(toHex(encodeScalar(shares[i] as bigint)), want.share);
    assert.equal(toHex(mulBase(shares[i] as bigint).toBytes()), want.commitment);
  });
});

test("threshold evaluation: blind, proofs, every combination, finalize", () => {
  const e = v.threshold_evaluation;
  const input = fromHex(e.oprf_input);
  const r = decodeScalar(fromHex(e.blind));
  const b = blind(input, r);
  assert.equal(toHex(b.blinded.toBytes()), e.blinded_element);
  const shares = v.shamir_split.shares;
  const evals = new Map<number, ReturnType<typeof decodeElement>>();
  e.evaluations.forEach((ev: Record<string, string | number>, i: number) => {
    const share = decodeScalar(fromHex(shares[i].share));
    const K = decodeElement(fromHex(ev.commitment as string));
    const Z = b.blinded.multiply(share);
    assert.equal(toHex(Z.toBytes()), ev.evaluated_element);
    const proof = generateProof(share, K, b.blinded, Z, decodeScalar(fromHex(ev.proof_random_scalar as string)));
    assert.equal(toHex(proof), ev.proof);
    assert.ok(verifyProof(K, b.blinded, Z, proof));
    // Tampering with the proof, the element or the commitment fails.
    const bad = Uint8Array.from(proof);
    bad[0] = (bad[0] as number) ^ 1;
    assert.ok(!verifyProof(K, b.blinded, Z, bad));
    assert.ok(!verifyProof(K, b.blinded, b.blinded, proof));
    assert.ok(!verifyProof(mulBase(7n), b.blinded, Z, proof));
    evals.set(Number(ev.node_id), Z);
  });
  for (const c of e.combinations) {
    const xs = c.node_ids.map((x: number) => BigInt(x));
    const lambdas = lagrangeAtZero(xs);
    assert.deepEqual(lambdas.map((l) => toHex(encodeScalar(l))), c.lagrange_coefficients);
    const z = combine(lambdas, c.node_ids.map((x: number) => evals.get(x)));
    assert.equal(toHex(z.toBytes()), c.combined_element);
    assert.equal(toHex(finalize(input, r, z)), c.hardened_password);
  }
});

test("commitment consistency", () => {
  const c = v.commitment_check;
  const parse = (items: { node_id: number; commitment: string }[]) =>
    items.map((x) => ({ nodeId: BigInt(x.node_id), commitment: decodeElement(fromHex(x.commitment)) }));
  assert.equal(inconsistentCommitment(c.threshold, parse(c.consistent)), undefined);
  assert.equal(inconsistentCommitment(c.threshold, parse(c.inconsistent)), BigInt(c.inconsistent_node_id));
});

test("element and scalar decoding refuse the identity and non-canonical values", () => {
  assert.throws(() => decodeElement(new Uint8Array(32)), /identity/);
  assert.throws(() => decodeElement(new Uint8Array(31)), /32 bytes/);
  assert.throws(() => decodeElement(fromHex("ff".repeat(32))), /canonical/);
  assert.throws(() => decodeScalar(fromHex("ff".repeat(32))), /canonical/);
});
