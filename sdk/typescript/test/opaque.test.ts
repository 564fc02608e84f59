// OPAQUE as bkv configures it against testdata/vectors/client-v2.json: every client
// message, the export and session keys, from the vector's random inputs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex, toHex } from "../src/bytes.js";
import { ClientLogin, ClientRegistration, deriveDhKeyPair, LoginFailed, randomizedPassword } from "../src/opaque.js";
import { decodeScalar, finalizeUnblinded, hashToGroup } from "../src/oprf.js";
import { vectors } from "./vectors.js";

const o = vectors("client-v2.json").opaque;
const ksf = { mCostKib: o.ksf.m_cost_kib, tCost: o.ksf.t_cost, pCost: o.ksf.p_cost };
const identity = fromHex(o.client_identity);
const password = fromHex(o.password);

test("the vector's hardened password is oprf-v2's", () => {
  assert.equal(o.password, vectors("oprf-v2.json").hardened_password.hardened_password);
  assert.equal(Buffer.from(identity).toString(), o.account);
  assert.equal(Buffer.from(fromHex(o.context)).toString(), "bkv/v2");
});

test("KSF and randomized password", async () => {
  const oprfKey = decodeScalar(fromHex(o.oprf_key));
  const out = finalizeUnblinded(password, hashToGroup(password).multiply(oprfKey));
  assert.equal(toHex(out), o.oprf_output);
  assert.equal(toHex(await randomizedPassword(out, ksf)), o.randomized_password);
  assert.equal(toHex(deriveDhKeyPair(fromHex(o.client_private_key_seed)).pk.toBytes()), o.client_public_key);
});

test("registration: request and upload byte for byte, export key", async () => {
  const reg = ClientRegistration.start(password, { blind: decodeScalar(fromHex(o.blind_registration)) });
  assert.equal(toHex(reg.request), o.registration_request);
  const { upload, exportKey } = await reg.finish(fromHex(o.registration_response), identity, ksf, {
    envelopeNonce: fromHex(o.envelope_nonce),
  });
  assert.equal(toHex(upload), o.registration_upload);
  assert.equal(toHex(exportKey), o.export_key);
});

test("login: KE1 and KE3 byte for byte, session and export keys", async () => {
  const rnd = {
    blind: decodeScalar(fromHex(o.blind_login)),
    clientNonce: fromHex(o.client_nonce),
    clientKeyshareSeed: fromHex(o.client_keyshare_seed),
  };
  const login = ClientLogin.start(password, rnd);
  assert.equal(toHex(login.request), o.credential_request);
  const done = await login.finish(fromHex(o.credential_response), identity, ksf);
  assert.equal(toHex(done.finalization), o.credential_finalization);
  assert.equal(toHex(done.sessionKey), o.session_key);
  assert.equal(toHex(done.exportKey), o.export_key);
});

test("login with a wrong password, another identity or another context fails", async () => {
  const ke2 = fromHex(o.credential_response);
  const wrong = Uint8Array.from(password);
  wrong[0] = (wrong[0] as number) ^ 1;
  await assert.rejects(ClientLogin.start(wrong).finish(ke2, identity, ksf), LoginFailed);
  const rnd = {
    blind: decodeScalar(fromHex(o.blind_login)),
    clientNonce: fromHex(o.client_nonce),
    clientKeyshareSeed: fromHex(o.client_keyshare_seed),
  };
  await assert.rejects(ClientLogin.start(password, rnd).finish(ke2, Buffer.from("bob@example.com"), ksf), LoginFailed);
  await assert.rejects(ClientLogin.start(password, rnd).finish(ke2, identity, ksf, Buffer.from("bkv/v1")), LoginFailed);
  await assert.rejects(ClientLogin.start(password, rnd).finish(ke2, identity, { mCostKib: 16, tCost: 1, pCost: 1 }), LoginFailed);
});
