// One SDK operation against a live cluster, for the Rust integration test
// tests/tests/t93_typescript_sdk.rs: reads the cluster from the environment, runs the
// command, prints one JSON line with the outcome (typed errors included) and exits 0;
// exits 1 with a message on anything unexpected.
//
//   BKV_ENDPOINTS   comma-separated client endpoints (https://host:port)
//   BKV_CA          path of the cluster CA certificate (PEM)
//   BKV_IDENTITY    the cluster identity key, hex (32 bytes) or the path of identity.pub.pem
//   BKV_ISSUER_KEY  path of the dev issuer key (PKCS#8 PEM); BKV_ISSUER its name
//   BKV_CLUSTER     the cluster name (the tokens' aud)
//   BKV_ACCOUNT     the account id; BKV_PASSWORD the password
//
// Commands: register [guess_limit] [key_hex] | recover | status | delete |
//           backup <dir> <bytes>: the backup journey with a file of that size (below) |
//           backup-code <dir>: the recovery-key half (below)
import { createHash, randomFillSync } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";

import { decryptToFile, encryptToFile } from "../src/backup/files.js";
import { enableBackupWithPassword, enableBackupWithRecoveryCode, restoreKeyWithCode, restoreKeyWithPassword } from "../src/backup/journey.js";

import { fromHex, toHex } from "../src/bytes.js";
import { VaultClient } from "../src/client.js";
import { BkvError, UnavailableError, WrongPasswordError } from "../src/errors.js";
import { LIGHT_KSF } from "../src/opaque.js";
import { devTokenSource, readIssuerKey } from "../src/token.js";

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
}

function client(): VaultClient {
  const identity = env("BKV_IDENTITY");
  return new VaultClient({
    endpoints: env("BKV_ENDPOINTS").split(","),
    caPem: readFileSync(env("BKV_CA")),
    identityKey: existsSync(identity) ? readFileSync(identity, "utf8") : fromHex(identity),
    token: devTokenSource(readIssuerKey(readFileSync(env("BKV_ISSUER_KEY"))), env("BKV_ISSUER"), env("BKV_CLUSTER"), env("BKV_ACCOUNT")),
    ksf: LIGHT_KSF,
    retry: { callTimeoutMs: 5_000, deadlineMs: 60_000 },
  });
}

function errorJson(e: BkvError): Record<string, unknown> {
  return {
    ok: false,
    error: e.name,
    code: e.code ?? null,
    reason: e.reason ?? null,
    guessesRemaining: e instanceof WrongPasswordError ? e.guessesRemaining : null,
    attempts: e instanceof UnavailableError ? e.attempts : null,
    message: e.message,
  };
}

async function main(): Promise<Record<string, unknown>> {
  const [command, ...args] = process.argv.slice(2);
  const c = client();
  const started = Date.now();
  try {
    switch (command) {
      case "register": {
        const guessLimit = args[0] ? Number(args[0]) : undefined;
        const backupKey = args[1] ? fromHex(args[1]) : undefined;
        const r = await c.register(env("BKV_PASSWORD"), { guessLimit, backupKey });
        return { ok: true, version: r.version.toString(), key: toHex(r.backupKey), endpoint: c.currentEndpoint(), ms: Date.now() - started };
      }
      case "recover": {
        const r = await c.recover(env("BKV_PASSWORD"));
        return { ok: true, version: r.version.toString(), key: toHex(r.backupKey), endpoint: c.currentEndpoint(), ms: Date.now() - started };
      }
      case "status": {
        const s = await c.status();
        return {
          ok: true,
          state: s.state,
          version: s.version.toString(),
          guessesUsed: s.guessesUsed,
          guessLimit: s.guessLimit,
          stagedVersion: s.stagedVersion.toString(),
        };
      }
      case "delete":
        return { ok: true, existed: await c.delete() };
      case "backup":
        return await backupJourney(c, args[0] ?? ".", Number(args[1] ?? 1 << 30));
      case "backup-code":
        return await backupWithCode(args[0] ?? ".");
      default:
        throw new Error(`unknown command ${command}`);
    }
  } catch (e) {
    if (e instanceof BkvError) return errorJson(e);
    throw e;
  } finally {
    c.close();
  }
}

/** Writes `bytes` random bytes to `path` through one reused 1 MiB buffer; their SHA-256. */
async function writeInput(path: string, bytes: number): Promise<string> {
  const hash = createHash("sha256");
  const out = await open(path, "w");
  try {
    const piece = Buffer.alloc(1 << 20);
    for (let left = bytes; left > 0; left -= piece.length) {
      const part = left >= piece.length ? piece : piece.subarray(0, left);
      randomFillSync(part);
      hash.update(part);
      await out.write(part);
    }
  } finally {
    await out.close();
  }
  return hash.digest("hex");
}

/** The SHA-256 of a file, read through one reused 1 MiB buffer. */
async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await open(path, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hash.digest("hex");
}

/** Peak resident memory of this process so far, in KiB (VmHWM, else maxRSS). */
function peakRssKib(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (m?.[1]) return Number(m[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

/**
 * The backup journey with one device for the backup and a "new device" (a second client)
 * for the restore: K behind the password, a file of `bytes` encrypted into a drive folder
 * and restored. Files are deleted afterwards. `peakRssKib` is this process's peak resident
 * memory over all of it.
 */
async function backupJourney(c: VaultClient, dir: string, bytes: number): Promise<Record<string, unknown>> {
  const input = join(dir, "input.bin");
  const drive = join(dir, "backup.bkvb");
  const restored = join(dir, "restored.bin");
  try {
    const t0 = Date.now();
    const peaks: Record<string, number> = { start: peakRssKib() };
    const enabled = await enableBackupWithPassword(c, env("BKV_PASSWORD"));
    c.close();
    peaks.registered = peakRssKib();
    const inputHash = await writeInput(input, bytes);
    peaks.written = peakRssKib();
    const t1 = Date.now();
    await encryptToFile(enabled.key, input, drive);
    peaks.encrypted = peakRssKib();
    const t2 = Date.now();
    const backupBytes = statSync(drive).size;
    await rm(input);
    const device2 = client();
    let restoredKey: Uint8Array;
    try {
      restoredKey = (await restoreKeyWithPassword(device2, env("BKV_PASSWORD"))).key;
    } finally {
      device2.close();
    }
    const t3 = Date.now();
    await decryptToFile(restoredKey, drive, restored);
    const t4 = Date.now();
    peaks.restored = peakRssKib();
    const restoredHash = await hashFile(restored);
    peaks.hashed = peakRssKib();
    const restoredBytes = statSync(restored).size;
    await rm(restored);
    await rm(drive);

    return {
      ok: true,
      bytes,
      backupBytes,
      restoredBytes,
      same: inputHash === restoredHash && bytes === restoredBytes,
      keysEqual: Buffer.from(enabled.key).equals(Buffer.from(restoredKey)),
      version: enabled.version?.toString(),
      encryptMs: t2 - t1,
      restoreMs: t4 - t3,
      totalMs: Date.now() - t0,
      peakRssKib: peakRssKib(),
      peaks,
    };
  } finally {
    await Promise.all([input, drive, restored].map((p) => rm(p, { force: true })));
  }
}

/**
 * The recovery-key half with a 1 MiB file: K from a fresh 64-digit key, the backup restored
 * with the key as typed, and another recovery key refused at the header.
 */
async function backupWithCode(dir: string): Promise<Record<string, unknown>> {
  const input = join(dir, "input.bin");
  const drive = join(dir, "backup.bkvb");
  const restored = join(dir, "restored.bin");
  try {
    // The recovery-key half, with a small file.
    const code = enableBackupWithRecoveryCode();
    const smallHash = await writeInput(input, 1 << 20);
    await encryptToFile(code.key, input, drive, { chunkSize: 4096 });
    await rm(input);
    await decryptToFile(restoreKeyWithCode(code.recoveryCode ?? ""), drive, restored);
    const codeRoundTrip = (await hashFile(restored)) === smallHash;
    let wrongCode = "accepted";
    try {
      await decryptToFile(restoreKeyWithCode(enableBackupWithRecoveryCode().recoveryCode ?? ""), drive, join(dir, "never.bin"));
    } catch (e) {
      wrongCode = (e as { kind?: string }).kind ?? String(e);
    }
    return { ok: true, codeRoundTrip, wrongCode, neverWritten: !existsSync(join(dir, "never.bin")) };
  } finally {
    await Promise.all([input, drive, restored].map((p) => rm(p, { force: true })));
  }
}

main().then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
  (e: unknown) => {
    process.stderr.write(`live.js: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
