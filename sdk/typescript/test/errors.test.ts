// The error details of testdata/vectors/errors.json decode to the typed errors.
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { test } from "node:test";

import { fromHex } from "../src/bytes.js";
import {
  decodeStatusDetails,
  DestroyedError,
  fromStatus,
  InvalidArgumentError,
  NoRecordError,
  RateLimitedError,
  TokenRefusedError,
  WrongPasswordError,
} from "../src/errors.js";
import { vectors } from "./vectors.js";

const cases: { case: string; code: number; message: string; grpc_status_details_bin: string }[] = vectors("errors.json").cases;

function serviceError(c: (typeof cases)[number]): ServiceError {
  const md = new Metadata();
  md.set("grpc-status-details-bin", Buffer.from(fromHex(c.grpc_status_details_bin)));
  return Object.assign(new Error(c.message), { code: c.code, details: c.message, metadata: md }) as ServiceError;
}

test("every case decodes: code, message, domain bkv, a reason", () => {
  assert.ok(cases.length >= 9);
  for (const c of cases) {
    const d = decodeStatusDetails(fromHex(c.grpc_status_details_bin));
    assert.equal(d.code, c.code, c.case);
    assert.equal(d.message, c.message, c.case);
    assert.equal(d.domain, "bkv", c.case);
    assert.match(d.reason ?? "", /^[A-Z_]+$/, c.case);
  }
});

function byCase(prefix: string) {
  const c = cases.find((x) => x.case.startsWith(prefix));
  assert.ok(c, prefix);
  return fromStatus(serviceError(c));
}

test("typed errors with their data", () => {
  const wrong = byCase("RecoverFinish with a wrong password");
  assert.ok(wrong instanceof WrongPasswordError);
  assert.equal(wrong.guessesRemaining, 3);
  const arg = byCase("a request field");
  assert.ok(arg instanceof InvalidArgumentError);
  assert.equal(arg.field, "attempt_id");
  assert.equal(arg.details?.fieldViolations[0]?.field, "attempt_id");
  assert.equal(arg.details?.fieldViolations[0]?.reason, "WRONG_LENGTH");
  const iss = byCase("an account token without iss");
  assert.ok(iss instanceof TokenRefusedError);
  assert.equal(iss.reason, "CLAIM_MISSING");
  assert.equal(iss.claim, "iss");
  assert.equal((byCase("an account token whose exp") as TokenRefusedError).claim, "exp");
  assert.equal(byCase("a RecoverFinish of a ticket").reason, "TICKET_USED");
  assert.ok(byCase("a record destroyed") instanceof DestroyedError);
  assert.ok(byCase("no active record") instanceof NoRecordError);
  const rl = byCase("rate limited");
  assert.ok(rl instanceof RateLimitedError);
  assert.equal(rl.retryDelayMs, 1500);
  const un = byCase("no quorum");
  assert.equal(un.reason, "UNAVAILABLE");
  assert.equal(un.details?.metadata.leader, "10.0.0.2:7101");
  assert.equal(un.details?.retryDelayMs, 50);
});
