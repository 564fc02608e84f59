// The account token of testdata/vectors/client-v2.json, and the dev issuer.
import { ed25519 } from "@noble/curves/ed25519";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";

import { fromHex } from "../src/bytes.js";
import { devTokenSource, isAccountId, issueToken, signingInput, subjectOf } from "../src/token.js";
import { vectors } from "./vectors.js";

const t = vectors("client-v2.json").account_token;

test("the vector token: layout and signature", () => {
  const input = signingInput(t.claims_json, t.header_json);
  assert.ok(t.token.startsWith(`${input}.`));
  const sig = Buffer.from(t.token.split(".")[2], "base64url");
  assert.ok(ed25519.verify(sig, Buffer.from(input, "ascii"), fromHex(t.issuer_public_key), { zip215: false }));
  assert.equal(subjectOf(t.token), "alice@example.com");
});

test("dev tokens verify with the issuer's public key", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const token = await devTokenSource(privateKey, "bkv-dev", "bkv-test", "bob")();
  const [h, c, s] = token.split(".") as [string, string, string];
  assert.ok(ed25519.verify(Buffer.from(s, "base64url"), Buffer.from(`${h}.${c}`), raw));
  const claims = JSON.parse(Buffer.from(c, "base64url").toString());
  assert.equal(claims.sub, "bob");
  assert.ok(claims.exp - claims.iat === 600);
  assert.equal(issueToken(privateKey, claims).split(".")[1], c);
  assert.ok(isAccountId("alice@example.com") && !isAccountId("a b") && !isAccountId(""));
});
