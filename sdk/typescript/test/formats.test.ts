// The sealed key, transported key, share map, share encryption, reset key and account
// token against testdata/vectors/client-v2.json and oprf-v2.json.
import { ed25519 } from "@noble/curves/ed25519";
import assert from "node:assert/strict";
import { test } from "node:test";

import { AeadError } from "../src/aead.js";
import { fromHex, toHex, utf8 } from "../src/bytes.js";
import { openSealedKey, openTransported, resetMessage, resetPublicKey, resetSeed, sealedKeyKey, sealKey, signReset, transportKey, transportSeal } from "../src/sealing.js";
import { decryptShare, encryptShare, shareContext, ShareMapError, verifyShareMap } from "../src/shares.js";
import { vectors } from "./vectors.js";

const c = vectors("client-v2.json");
const o = vectors("oprf-v2.json");

test("sealed key", () => {
  const s = c.sealed_key;
  assert.equal(toHex(sealedKeyKey(fromHex(s.export_key))), s.aes_key);
  const sealed = sealKey(fromHex(s.export_key), fromHex(s.account), fromHex(s.backup_key), fromHex(s.nonce));
  assert.equal(toHex(sealed), s.sealed_key);
  assert.equal(toHex(openSealedKey(fromHex(s.export_key), fromHex(s.account), sealed)), s.backup_key);
  assert.throws(() => openSealedKey(fromHex(s.export_key), utf8("bob"), sealed), AeadError);
});

test("transported key", () => {
  const t = c.transported_key;
  assert.equal(toHex(transportKey(fromHex(t.session_key))), t.aes_key);
  const account = fromHex(c.sealed_key.account);
  const out = transportSeal(fromHex(t.session_key), account, BigInt(t.version), fromHex(t.sealed_key), fromHex(t.nonce));
  assert.equal(toHex(out), t.transported_key);
  assert.equal(toHex(openTransported(fromHex(t.session_key), account, BigInt(t.version), out)), t.sealed_key);
  assert.throws(() => openTransported(fromHex(t.session_key), account, 2n, out), AeadError);
});

test("share map: verifies, parses, and refuses what it must", () => {
  const m = c.share_map;
  const enc = fromHex(m.encoded);
  const sig = fromHex(m.signature);
  const id = fromHex(m.identity_public_key);
  const map = verifyShareMap(enc, sig, id, m.cluster_name);
  assert.equal(map.epoch, BigInt(m.epoch));
  assert.equal(map.threshold, m.threshold);
  assert.deepEqual(
    map.holders.map((h) => [Number(h.nodeId), toHex(h.receiveKey)]),
    m.holders.map((h: { node_id: number; receive_key: string }) => [h.node_id, h.receive_key]),
  );
  assert.throws(() => verifyShareMap(enc, sig, id, "other"), /cluster/);
  const bad = Uint8Array.from(sig);
  bad[5] = (bad[5] as number) ^ 1;
  assert.throws(() => verifyShareMap(enc, bad, id, m.cluster_name), ShareMapError);
  assert.throws(() => verifyShareMap(enc, sig, ed25519.getPublicKey(new Uint8Array(32)), m.cluster_name), ShareMapError);
  // A map signed properly but with trailing bytes, or a key off the curve, is refused.
  const sk = new Uint8Array(32).fill(7);
  const pk = ed25519.getPublicKey(sk);
  const trailing = Uint8Array.from([...enc, 0]);
  assert.throws(() => verifyShareMap(trailing, ed25519.sign(trailing, sk), pk, m.cluster_name), /trailing/);
  const offCurve = Uint8Array.from(enc);
  offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
  assert.throws(() => verifyShareMap(offCurve, ed25519.sign(offCurve, sk), pk, m.cluster_name), /P-256/);
});

test("share transport", () => {
  const s = o.share_transport;
  const ctx = shareContext(utf8(s.cluster_name), utf8(s.account), BigInt(s.node_id), s.guess_limit, fromHex(s.reset_public_key), fromHex(s.commitment));
  assert.equal(toHex(ctx), s.context);
  const ct = encryptShare(fromHex(s.recipient_public_key), fromHex(s.share), ctx, fromHex(s.ephemeral_secret_key), fromHex(s.nonce));
  assert.equal(toHex(ct), s.share_ciphertext);
  assert.equal(ct.length, 125);
  assert.equal(toHex(decryptShare(fromHex(s.recipient_secret_key), ct, ctx)), s.share);
  // A fresh encryption opens too, and not under another context.
  const fresh = encryptShare(fromHex(s.recipient_public_key), fromHex(s.share), ctx);
  assert.equal(toHex(decryptShare(fromHex(s.recipient_secret_key), fresh, ctx)), s.share);
  assert.throws(() => decryptShare(fromHex(s.recipient_secret_key), fresh, utf8("other")), AeadError);
});

test("reset key and signature", () => {
  const r = o.reset_authorization;
  const seed = resetSeed(fromHex(r.export_key));
  assert.equal(toHex(seed), r.reset_seed);
  assert.equal(toHex(resetPublicKey(seed)), r.reset_public_key);
  const msg = resetMessage(utf8(r.cluster_name), utf8(r.account), BigInt(r.version), BigInt(r.charge));
  assert.equal(toHex(msg), r.reset_message);
  assert.equal(toHex(signReset(seed, utf8(r.cluster_name), utf8(r.account), BigInt(r.version), BigInt(r.charge))), r.signature);
});
