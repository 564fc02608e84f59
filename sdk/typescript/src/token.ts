// Account tokens (docs/PROTOCOL.md §1.2): the `authorization` value a call carries, and a
// development issuer that signs tokens with an Ed25519 key, as `bkv token issue` does.
// Production apps get tokens from their own account system.
import { createPrivateKey, type KeyObject, sign as nodeSign } from "node:crypto";

/** Gives a fresh token for every call (a compact JWT, without `Bearer `). */
export type TokenSource = () => string | Promise<string>;

/** The claims bkv reads. */
export interface Claims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  nbf?: number;
}

function b64url(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString("base64url");
}

/** The header every token gets: `{"alg":"EdDSA","typ":"JWT"}`. */
export const TOKEN_HEADER = '{"alg":"EdDSA","typ":"JWT"}';

/** The signing input `base64url(header) "." base64url(claims)` of a claims JSON text. */
export function signingInput(claimsJson: string, headerJson: string = TOKEN_HEADER): string {
  return `${b64url(headerJson)}.${b64url(claimsJson)}`;
}

/** Reads an Ed25519 issuer key (PKCS#8 PEM, as `issuer.key`). */
export function readIssuerKey(pem: string | Buffer): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== "ed25519") throw new TypeError("the issuer key is not an Ed25519 key");
  return key;
}

/** Signs `claims` into a compact JWS with the issuer key. */
export function issueToken(issuer: KeyObject, claims: Claims): string {
  const input = signingInput(JSON.stringify(claims));
  const sig = nodeSign(null, Buffer.from(input, "ascii"), issuer);
  return `${input}.${b64url(sig)}`;
}

/**
 * A token source for development: a fresh token for `account` on every call, valid
 * `lifetimeSecs` (at most 3600: the nodes refuse longer ones).
 */
export function devTokenSource(issuer: KeyObject, iss: string, aud: string, account: string, lifetimeSecs = 600): TokenSource {
  return () => {
    const now = Math.floor(Date.now() / 1000);
    return issueToken(issuer, { iss, sub: account, aud, iat: now, exp: now + lifetimeSecs });
  };
}

/** The account id a token names (its `sub`), read without checking the signature. */
export function subjectOf(token: string): string {
  const part = token.split(".")[1];
  if (part === undefined) throw new TypeError("not a compact JWT");
  const claims = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as { sub?: unknown };
  if (typeof claims.sub !== "string") throw new TypeError("token has no sub");
  return claims.sub;
}

/** The account id alphabet and length of §1.2. */
export function isAccountId(s: string): boolean {
  return /^[A-Za-z0-9._:@+=-]{1,128}$/.test(s);
}
