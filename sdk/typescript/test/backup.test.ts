// The backup format and the recovery key against testdata/vectors/backup-v1.json, every
// refusal of docs/BACKUP_FORMAT.md §5, and backup files on disk.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { decryptToFile, encryptToFile } from "../src/backup/files.js";

import { decryptStream, encryptStream, fileKeys, StreamError } from "../src/backup/format.js";
import { checkDigits, formatRecoveryCode, generateRecoveryCode, keyFromRecoveryCode, parseRecoveryCode, RecoveryCodeError } from "../src/backup/recoveryCode.js";
import { fromHex, toHex } from "../src/bytes.js";
import { vectors } from "./vectors.js";

const v = vectors("backup-v1.json");

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of gen) out.push(b);
  return Buffer.concat(out);
}

async function restore(key: Uint8Array, file: Uint8Array, pieces = 7): Promise<Buffer> {
  // Fed in uneven pieces, as a stream would.
  const parts: Uint8Array[] = [];
  for (let i = 0; i < file.length; i += pieces) parts.push(file.subarray(i, i + pieces));
  return collect(decryptStream(key, parts));
}

async function refusal(key: Uint8Array, file: Uint8Array): Promise<StreamError> {
  try {
    await restore(key, file);
  } catch (e) {
    assert.ok(e instanceof StreamError, String(e));
    return e;
  }
  assert.fail("the backup was accepted");
}

test("recovery key: check digits, grouping, K", () => {
  const r = v.recovery_code;
  assert.equal(checkDigits(r.random_digits), r.check_digits);
  assert.equal(formatRecoveryCode(r.random_digits + r.check_digits), r.code_grouped);
  assert.equal(toHex(keyFromRecoveryCode(r.code_grouped)), r.backup_key);
  assert.equal(toHex(keyFromRecoveryCode(r.code_grouped.replaceAll(" ", "-"))), r.backup_key);
  assert.equal(toHex(keyFromRecoveryCode(`\t${r.code_grouped.replaceAll(" ", "\n")}\n`)), r.backup_key);
});

test("recovery key: every single typo and every neighbour swap is caught", () => {
  const digits = generateRecoveryCode();
  assert.equal(parseRecoveryCode(digits), digits);
  for (let i = 0; i < 64; i++) {
    const d = Number(digits[i]);
    const typo = digits.slice(0, i) + String((d + 1 + (i % 9)) % 10) + digits.slice(i + 1);
    assert.throws(() => parseRecoveryCode(typo), RecoveryCodeError);
    if (i < 63 && digits[i] !== digits[i + 1]) {
      const swapped = digits.slice(0, i) + digits[i + 1] + digits[i] + digits.slice(i + 2);
      assert.throws(() => parseRecoveryCode(swapped), RecoveryCodeError);
    }
  }
  assert.throws(() => parseRecoveryCode(`${digits}0`), /65 digits/);
  assert.throws(() => parseRecoveryCode(`x${digits}`), /character 1\b/);
  // The message never holds the digits.
  try {
    parseRecoveryCode(`${digits.slice(0, 10)}a${digits.slice(10)}`);
  } catch (e) {
    assert.ok(!(e as Error).message.includes(digits.slice(0, 10)));
    assert.match((e as Error).message, /character 11\b/);
  }
});

test("file keys", () => {
  const f = v.file_keys;
  const k = fileKeys(fromHex(f.backup_key), fromHex(f.salt));
  assert.equal(toHex(k.okm), f.okm);
  assert.equal(toHex(k.headerKey), f.header_key);
  assert.equal(toHex(k.payloadKey), f.payload_key);
  assert.equal(toHex(k.noncePrefix), f.nonce_prefix);
});

test("whole backups byte for byte, and back", async () => {
  for (const b of v.backups) {
    const key = fromHex(b.backup_key);
    const plain = fromHex(b.plaintext);
    // Written from pieces of every size.
    for (const step of [1, 5, 16, 1000]) {
      const pieces: Uint8Array[] = [];
      for (let i = 0; i < plain.length; i += step) pieces.push(plain.subarray(i, i + step));
      const file = await collect(encryptStream(key, pieces, { chunkSize: b.chunk_size, salt: fromHex(b.salt) }));
      assert.equal(toHex(file), b.file, `${b.description} (pieces of ${step})`);
    }
    assert.equal(toHex(await restore(key, fromHex(b.file))), b.plaintext);
    assert.equal(b.chunks.length, Math.max(1, Math.ceil(plain.length / b.chunk_size)));
  }
});

test("refusals: wrong key, not a backup, versions, cut, extended, reordered, altered", async () => {
  const b = v.backups[0];
  const key = fromHex(b.backup_key);
  const file = fromHex(b.file);
  assert.equal((await refusal(new Uint8Array(32), file)).kind, "WrongKey");
  assert.equal((await refusal(key, new Uint8Array(0))).kind, "NotABackup");
  assert.equal((await refusal(key, Buffer.from("hello world, not a backup at all"))).kind, "NotABackup");
  assert.equal((await refusal(key, file.subarray(0, 3))).kind, "Truncated");
  assert.equal((await refusal(key, file.subarray(0, 50))).kind, "Truncated");
  const v2 = Uint8Array.from(file);
  v2[4] = 2;
  assert.equal((await refusal(key, v2)).kind, "UnsupportedVersion");
  const alg = Uint8Array.from(file);
  alg[5] = 9;
  assert.equal((await refusal(key, alg)).kind, "UnsupportedAlgorithm");
  const cs = Uint8Array.from(file);
  cs[9] = 1;
  cs[8] = 0;
  cs[7] = 0;
  cs[6] = 0;
  assert.equal((await refusal(key, cs)).kind, "BadChunkSize");
  const salt = Uint8Array.from(file);
  salt[20] = (salt[20] as number) ^ 1;
  assert.equal((await refusal(key, salt)).kind, "WrongKey");
  // Cut at each chunk boundary and inside chunks: never taken for whole.
  for (let n = 74; n < file.length; n++) {
    const e = await refusal(key, file.subarray(0, n));
    assert.ok(["Truncated", "Corrupted"].includes(e.kind), `${n}: ${e.kind}`);
  }
  assert.equal((await refusal(key, file.subarray(0, 74 + 32))).kind, "Truncated");
  assert.equal((await refusal(key, file.subarray(0, 74 + 32))).chunk, 1);
  // Bytes after a last chunk that is full: TrailingData; after a short one, the chunk reads
  // longer than it was and does not open.
  const full = await collect(encryptStream(key, [Buffer.alloc(32, 1)], { chunkSize: 16 }));
  const extended = await refusal(key, Buffer.concat([full, Buffer.from([0])]));
  assert.equal(extended.kind, "TrailingData");
  assert.equal(extended.chunk, 1);
  assert.equal((await refusal(key, Buffer.concat([file, Buffer.from([0])]))).kind, "Corrupted");
  const c0 = file.subarray(74, 106);
  const c1 = file.subarray(106, 138);
  const swapped = Buffer.concat([file.subarray(0, 74), c1, c0, file.subarray(138)]);
  const e = await refusal(key, swapped);
  assert.equal(e.kind, "Corrupted");
  assert.equal(e.chunk, 0);
  const altered = Uint8Array.from(file);
  altered[120] = (altered[120] as number) ^ 0x80;
  assert.equal((await refusal(key, altered)).chunk, 1);
  // A chunk from another backup (same key, another salt) does not open.
  const other = await collect(encryptStream(key, [fromHex(b.plaintext)], { chunkSize: 16 }));
  const spliced = Buffer.concat([file.subarray(0, 74), other.subarray(74, 106), file.subarray(106)]);
  assert.equal((await refusal(key, spliced)).kind, "Corrupted");
});

test("round trips at chunk-size multiples and random sizes", async () => {
  const key = new Uint8Array(32).fill(3);
  for (const n of [0, 1, 15, 16, 17, 32, 33, 1000, 65536, 65537, 200000]) {
    const plain = Buffer.alloc(n, n % 251);
    const file = await collect(encryptStream(key, [plain], n > 1000 ? {} : { chunkSize: 16 }));
    const cs = n > 1000 ? 65536 : 16;
    assert.equal(file.length, 74 + n + 16 * Math.max(1, Math.ceil(n / cs)));
    assert.ok((await restore(key, file, 4096)).equals(plain));
  }
});

test("files: round trip, and an output that is not a regular file is refused untouched", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bkv-files-test-"));
  try {
    const key = new Uint8Array(32).fill(9);
    const plain = Buffer.alloc(200_000, 5);
    writeFileSync(join(dir, "in.bin"), plain);
    await encryptToFile(key, join(dir, "in.bin"), join(dir, "b.bkvb"));
    await decryptToFile(key, join(dir, "b.bkvb"), join(dir, "out.bin"));
    assert.ok(readFileSync(join(dir, "out.bin")).equals(plain));
    // A restore under another key leaves nothing behind.
    await assert.rejects(decryptToFile(new Uint8Array(32), join(dir, "b.bkvb"), join(dir, "bad.bin")), StreamError);
    assert.deepEqual(readdirSync(dir).sort(), ["b.bkvb", "in.bin", "out.bin"]);
    // A pipe (as a device like /dev/null would be) is refused, not replaced.
    execFileSync("mkfifo", [join(dir, "pipe")]);
    await assert.rejects(decryptToFile(key, join(dir, "b.bkvb"), join(dir, "pipe")), /not a regular file/);
    await assert.rejects(encryptToFile(key, join(dir, "in.bin"), join(dir, "pipe")), /not a regular file/);
    assert.ok(statSync(join(dir, "pipe")).isFIFO());
    await assert.rejects(decryptToFile(key, join(dir, "b.bkvb"), dir), /not a regular file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
