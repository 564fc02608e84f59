// The backup journey of an app, end to end, with the TypeScript SDK: turn on end-to-end
// encrypted backup, encrypt a backup into the "cloud drive" (a folder here), lose the
// phone, and restore everything on a new one: once with the password kept in bkv, once
// with a 64-digit recovery key.
//
// Run it against the local cluster (the password is read from stdin):
//
//   cluster/up && . cluster/local/bkv.env
//   (cd sdk/typescript && npm ci && npm run build)
//   echo 'correct horse battery staple' | node sdk/typescript/dist/examples/backup.js alice@example.com [FILE]
//
// It backs up FILE, or 8 MiB of generated data. Settings from the environment, as
// cluster/local/bkv.env sets them: BKV_ENDPOINTS, BKV_CA_CERT, BKV_IDENTITY_PUB, and an
// account token from BKV_TOKEN or, in development, issued on the fly with BKV_ISSUER_KEY
// (issuer BKV_ISSUER, default "bkv-dev") for audience BKV_CLUSTER; BKV_ROUTING=stay to
// stay with whichever node answered instead of following the leader.
//
// Nothing secret leaves the device in the clear: the vault never sees the password or K
// (OPAQUE and the threshold OPRF), and the drive holds only ciphertext.
import { randomFillSync, timingSafeEqual } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  decryptToFile,
  devTokenSource,
  enableBackupWithPassword,
  enableBackupWithRecoveryCode,
  encryptToFile,
  readIssuerKey,
  restoreKeyWithCode,
  restoreKeyWithPassword,
  StreamError,
  VaultClient,
  WrongPasswordError,
} from "../src/index.js";

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`set ${name} (source cluster/local/bkv.env)`);
  return v;
}

/** A client on "a device" for `account`. */
function device(account: string): VaultClient {
  const token = process.env.BKV_TOKEN;
  return new VaultClient({
    endpoints: need("BKV_ENDPOINTS").split(","),
    caPem: readFileSync(need("BKV_CA_CERT")),
    identityKey: readFileSync(need("BKV_IDENTITY_PUB"), "utf8"),
    token: token
      ? () => token
      : devTokenSource(readIssuerKey(readFileSync(need("BKV_ISSUER_KEY"))), process.env.BKV_ISSUER ?? "bkv-dev", need("BKV_CLUSTER"), account),
    routing: process.env.BKV_ROUTING === "stay" ? "sticky" : "leader",
  });
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const p of process.stdin) parts.push(p as Buffer);
  return Buffer.concat(parts).toString("utf8").replace(/\r?\n$/, "");
}

function progress(label: string, total: number): (n: number) => void {
  let shown = -1;
  return (n) => {
    const pct = total === 0 ? 100 : Math.floor((n * 100) / total / 10) * 10;
    if (pct !== shown) {
      shown = pct;
      process.stdout.write(`\r  ${label} ${pct}%${pct === 100 ? "\n" : ""}`);
    }
  };
}

function sameFile(a: string, b: string): boolean {
  const x = readFileSync(a);
  const y = readFileSync(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function main(): Promise<void> {
  const account = process.argv[2] ?? "example-user";
  const drive = mkdtempSync(join(tmpdir(), "bkv-example-drive-"));
  try {
    let input = process.argv[3];
    if (!input) {
      input = join(drive, "photos.bin");
      writeFileSync(input, randomFillSync(Buffer.alloc(8 << 20)));
    }
    const size = statSync(input).size;
    const password = await readStdin();
    if (!password) throw new Error("give the password on stdin");

    console.log(`1. On the phone: enable backup for ${account} with a password (K is registered in bkv)`);
    const phone = device(account);
    const enabled = await enableBackupWithPassword(phone, password);
    phone.close();
    console.log(`   record version ${enabled.version}`);
    const backup = join(drive, "backup.bkvb");
    await encryptToFile(enabled.key, input, backup, { progress: progress("encrypting", size) });
    console.log(`   ${size} bytes -> ${statSync(backup).size} bytes in the drive`);

    console.log("2. The phone is lost. On the new phone: a wrong password first, then the right one");
    const newPhone = device(account);
    try {
      await restoreKeyWithPassword(newPhone, `${password}!`);
      throw new Error("a wrong password was accepted");
    } catch (e) {
      if (!(e instanceof WrongPasswordError)) throw e;
      console.log(`   wrong password: ${e.guessesRemaining} guesses remaining`);
    }
    const { key } = await restoreKeyWithPassword(newPhone, password);
    newPhone.close();
    const restored = join(drive, "restored.bin");
    await decryptToFile(key, backup, restored, { progress: progress("restoring", size + 74) });
    if (!sameFile(input, restored)) throw new Error("the restored file differs");
    console.log("   restored, byte for byte");

    console.log("3. The same with a 64-digit recovery key written on paper instead of a password");
    const code = enableBackupWithRecoveryCode();
    console.log(`   recovery key: ${code.recoveryCode}`);
    await encryptToFile(code.key, input, backup);
    const typo = (code.recoveryCode ?? "").replace(/^(\d)/, (d) => String((Number(d) + 1) % 10));
    try {
      restoreKeyWithCode(typo);
    } catch (e) {
      console.log(`   a mistyped key: ${(e as Error).message}`);
    }
    await decryptToFile(restoreKeyWithCode(code.recoveryCode ?? ""), backup, restored);
    if (!sameFile(input, restored)) throw new Error("the restored file differs");
    try {
      await decryptToFile(enabled.key, backup, join(drive, "never.bin"));
    } catch (e) {
      if (!(e instanceof StreamError)) throw e;
      console.log(`   the password's K does not open it: ${e.kind}`);
    }
    console.log("   restored, byte for byte");
    console.log("done");
  } finally {
    rmSync(drive, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`backup example: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
