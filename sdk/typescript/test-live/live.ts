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
//   BKV_KSF         optional "m,t,p": Argon2id parameters of registrations (light by default)
//
// Commands: register [guess_limit] [key_hex] | recover | status | delete |
//           enable-backup (K behind the password) | restore-key (K back with it)
import { existsSync, readFileSync } from "node:fs";

import { enableBackupWithPassword, restoreKeyWithPassword } from "../src/backup/journey.js";

import { fromHex, toHex } from "../src/bytes.js";
import { VaultClient } from "../src/client.js";
import { BkvError, UnavailableError, WrongPasswordError } from "../src/errors.js";
import { type KsfParams, LIGHT_KSF } from "../src/opaque.js";
import { devTokenSource, readIssuerKey } from "../src/token.js";

function env(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set`);
  return v;
}

/** BKV_KSF="m,t,p" (KiB, passes, lanes) for registrations; light parameters by default. */
function ksfFromEnv(): KsfParams {
  const v = process.env.BKV_KSF;
  if (!v) return LIGHT_KSF;
  const [m, t, p] = v.split(",").map(Number);
  return { mCostKib: m ?? 0, tCost: t ?? 0, pCost: p ?? 0 };
}

function client(): VaultClient {
  const identity = env("BKV_IDENTITY");
  return new VaultClient({
    endpoints: env("BKV_ENDPOINTS").split(","),
    caPem: readFileSync(env("BKV_CA")),
    identityKey: existsSync(identity) ? readFileSync(identity, "utf8") : fromHex(identity),
    token: devTokenSource(readIssuerKey(readFileSync(env("BKV_ISSUER_KEY"))), env("BKV_ISSUER"), env("BKV_CLUSTER"), env("BKV_ACCOUNT")),
    ksf: ksfFromEnv(),
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
      case "enable-backup": {
        const e = await enableBackupWithPassword(c, env("BKV_PASSWORD"));
        return { ok: true, version: e.version?.toString(), key: toHex(e.key) };
      }
      case "restore-key": {
        const r = await restoreKeyWithPassword(c, env("BKV_PASSWORD"));
        return { ok: true, version: r.version.toString(), key: toHex(r.key) };
      }
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

main().then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
  },
  (e: unknown) => {
    process.stderr.write(`live.js: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
