// The retry rules of docs/PROTOCOL.md §7 in the Failover layer, against fake Vault servers
// (grpc-js, TLS with a throwaway certificate made by openssl): UNAVAILABLE with a leader
// hint hops straight to that node, a success's bkv-leader header moves the next call there,
// RESOURCE_EXHAUSTED waits its RetryInfo delay, a refused connection moves on, and any
// other status is an answer, never retried.
import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { BkvError, NoRecordError } from "../src/errors.js";
import { Failover } from "../src/failover.js";
import { rpcTypes, vaultService } from "../src/proto.js";

type Reply = { code: number; reason: string; meta?: Record<string, string>; retryMs?: number } | { ok: true; leader?: string };

interface Fake {
  address: string;
  server: grpc.Server;
  replies: Reply[];
  calls: number;
  authorization: string[];
}

let dir = "";
let cert: Buffer | undefined;
let key: Buffer | undefined;
const fakes: Fake[] = [];

function details(code: number, reason: string, meta: Record<string, string> = {}, retryMs?: number): Buffer {
  const root = rpcTypes();
  const any = (name: string, value: object) => ({
    type_url: `type.googleapis.com/${name}`,
    value: root.lookupType(name).encode(root.lookupType(name).fromObject(value)).finish(),
  });
  const items = [any("google.rpc.ErrorInfo", { reason, domain: "bkv", metadata: meta })];
  if (retryMs !== undefined) {
    items.push(any("google.rpc.RetryInfo", { retry_delay: { seconds: Math.floor(retryMs / 1000), nanos: (retryMs % 1000) * 1e6 } }));
  }
  const Status = root.lookupType("google.rpc.Status");
  return Buffer.from(Status.encode(Status.fromObject({ code, message: reason, details: items })).finish());
}

async function fake(): Promise<Fake> {
  const server = new grpc.Server();
  const f: Fake = { address: "", server, replies: [], calls: 0, authorization: [] };
  server.addService(vaultService().service, {
    Status: (call: grpc.ServerUnaryCall<object, object>, callback: grpc.sendUnaryData<object>) => {
      f.calls++;
      f.authorization.push(String(call.metadata.get("authorization")[0]));
      const r = f.replies.shift() ?? { ok: true };
      if ("ok" in r) {
        if (r.leader) {
          const md = new grpc.Metadata();
          md.set("bkv-leader", r.leader);
          call.sendMetadata(md);
        }
        callback(null, { state: "RECORD_STATE_ABSENT", version: "0", guesses_used: 0, guess_limit: 0, staged_version: "0" });
      } else {
        const md = new grpc.Metadata();
        md.set("grpc-status-details-bin", details(r.code, r.reason, r.meta, r.retryMs));
        callback({ code: r.code, details: r.reason, metadata: md });
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(null, [{ private_key: key as Buffer, cert_chain: cert as Buffer }], false),
      (e, p) => (e ? reject(e) : resolve(p)),
    ),
  );
  f.address = `127.0.0.1:${port}`;
  fakes.push(f);
  return f;
}

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip = hasOpenssl() ? false : "openssl is not installed (needed to make the fake servers' certificate)";

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "bkv-failover-test-"));
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
    { stdio: "ignore" },
  );
  cert = readFileSync(join(dir, "cert.pem"));
  key = readFileSync(join(dir, "key.pem"));
});

after(() => {
  for (const f of fakes) f.server.forceShutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const fast = { callTimeoutMs: 2000, deadlineMs: 10_000, maxAttempts: 8, baseBackoffMs: 10, maxBackoffMs: 50 };
const bearer = async () => "header.claims.signature";

test("UNAVAILABLE with a leader hint hops to it; the success's header moves the next call there", { skip }, async () => {
  const a = await fake();
  const b = await fake();
  const c = await fake();
  a.replies.push({ code: grpc.status.UNAVAILABLE, reason: "UNAVAILABLE", meta: { leader: c.address }, retryMs: 50 });
  c.replies.push({ ok: true, leader: b.address });
  const f = new Failover([a.address, b.address, c.address].map((x) => `https://${x}`), cert as Buffer, "leader", fast);
  try {
    await f.call("Status", {}, bearer);
    assert.deepEqual([a.calls, b.calls, c.calls], [1, 0, 1]);
    assert.equal(a.authorization[0], "Bearer header.claims.signature");
    // c named b the leader: the next call goes to b.
    assert.equal(f.preferredEndpoint(), b.address);
    await f.call("Status", {}, bearer);
    assert.deepEqual([a.calls, b.calls, c.calls], [1, 1, 1]);
  } finally {
    f.close();
  }
});

test("sticky routing ignores the leader header", { skip }, async () => {
  const a = await fake();
  const b = await fake();
  a.replies.push({ ok: true, leader: b.address });
  const f = new Failover([`https://${a.address}`, `https://${b.address}`], cert as Buffer, "sticky", fast);
  try {
    await f.call("Status", {}, bearer);
    assert.equal(f.preferredEndpoint(), a.address);
  } finally {
    f.close();
  }
});

test("a refused connection and UNAVAILABLE move on to the next node", { skip }, async () => {
  const b = await fake();
  const c = await fake();
  b.replies.push({ code: grpc.status.UNAVAILABLE, reason: "UNAVAILABLE" });
  // Nothing listens on port 1 of 127.0.0.1.
  const f = new Failover(["https://127.0.0.1:1", `https://${b.address}`, `https://${c.address}`], cert as Buffer, "leader", fast);
  try {
    await f.call("Status", {}, bearer);
    assert.deepEqual([b.calls, c.calls], [1, 1]);
    assert.equal(f.preferredEndpoint(), c.address);
  } finally {
    f.close();
  }
});

test("RESOURCE_EXHAUSTED waits its RetryInfo delay and retries the same node", { skip }, async () => {
  const a = await fake();
  a.replies.push({ code: grpc.status.RESOURCE_EXHAUSTED, reason: "RATE_LIMITED", retryMs: 300 });
  const f = new Failover([`https://${a.address}`], cert as Buffer, "leader", fast);
  try {
    const t = Date.now();
    await f.call("Status", {}, bearer);
    assert.ok(Date.now() - t >= 300, "did not wait the delay");
    assert.equal(a.calls, 2);
  } finally {
    f.close();
  }
});

test("any other status is an answer: typed, not retried", { skip }, async () => {
  const a = await fake();
  const b = await fake();
  a.replies.push({ code: grpc.status.NOT_FOUND, reason: "NO_RECORD" });
  const f = new Failover([`https://${a.address}`, `https://${b.address}`], cert as Buffer, "leader", fast);
  try {
    await assert.rejects(f.call("Status", {}, bearer), NoRecordError);
    assert.deepEqual([a.calls, b.calls], [1, 0]);
  } finally {
    f.close();
  }
});

test("no node answers: UnavailableError within the attempt budget", { skip }, async () => {
  const f = new Failover(["https://127.0.0.1:1", "https://127.0.0.1:2"], cert as Buffer, "leader", { ...fast, maxAttempts: 4 });
  try {
    const e = await f.call("Status", {}, bearer).then(
      () => assert.fail("answered"),
      (err: unknown) => err,
    );
    assert.ok(e instanceof BkvError && e.name === "UnavailableError", String(e));
    assert.match((e as Error).message, /after 4 attempts/);
  } finally {
    f.close();
  }
});
