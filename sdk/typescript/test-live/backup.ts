// The backup half of the journey for tests/tests/t93_typescript_sdk.rs, in a process that
// loads only the SDK's backup modules (no gRPC), so that its peak resident memory measures
// what streaming a backup costs. K comes as hex on stdin (from `live.js enable-backup` or
// `restore-key`); prints one JSON line.
//
//   encrypt <dir> <bytes>  writes <bytes> random bytes to dir/input.bin, encrypts them into
//                          dir/backup.bkvb (the drive), deletes the input
//   restore <dir>          restores dir/backup.bkvb into dir/restored.bin, deletes both
//   code <dir>             the recovery-key half with 1 MiB (no K on stdin)
import { createHash, randomFillSync } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";

import { decryptToFile, encryptToFile } from "../src/backup/files.js";
import { StreamError } from "../src/backup/format.js";
import { enableBackupWithRecoveryCode, restoreKeyWithCode } from "../src/backup/journey.js";
import { fromHex } from "../src/bytes.js";

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

async function keyFromStdin(): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  for await (const p of process.stdin) parts.push(p as Buffer);
  const key = fromHex(Buffer.concat(parts).toString("utf8").trim());
  if (key.length !== 32) throw new Error("K on stdin must be 32 bytes of hex");
  return key;
}

async function main(): Promise<Record<string, unknown>> {
  const [command, dir = ".", size] = process.argv.slice(2);
  const input = join(dir, "input.bin");
  const drive = join(dir, "backup.bkvb");
  const restored = join(dir, "restored.bin");
  const baseline = peakRssKib();
  switch (command) {
    case "encrypt": {
      const key = await keyFromStdin();
      const bytes = Number(size ?? 1 << 30);
      try {
        const inputHash = await writeInput(input, bytes);
        const t = Date.now();
        await encryptToFile(key, input, drive);
        return { ok: true, bytes, inputHash, backupBytes: statSync(drive).size, ms: Date.now() - t, baselineKib: baseline, peakRssKib: peakRssKib() };
      } finally {
        await rm(input, { force: true });
      }
    }
    case "restore": {
      const key = await keyFromStdin();
      try {
        const t = Date.now();
        await decryptToFile(key, drive, restored);
        const ms = Date.now() - t;
        return { ok: true, restoredHash: await hashFile(restored), restoredBytes: statSync(restored).size, ms, baselineKib: baseline, peakRssKib: peakRssKib() };
      } finally {
        await Promise.all([drive, restored].map((p) => rm(p, { force: true })));
      }
    }
    case "code": {
      try {
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
          wrongCode = e instanceof StreamError ? e.kind : String(e);
        }
        return { ok: true, codeRoundTrip, wrongCode, neverWritten: !existsSync(join(dir, "never.bin")) };
      } finally {
        await Promise.all([input, drive, restored].map((p) => rm(p, { force: true })));
      }
    }
    default:
      throw new Error(`unknown command ${command}`);
  }
}

main().then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
  (e: unknown) => {
    process.stderr.write(`backup.js: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
