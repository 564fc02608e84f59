// The vault client: register, recover, status and delete for the account a token names,
// following docs/PROTOCOL.md §3 and §4 step by step, over the failover of failover.ts.
import { createPublicKey, randomBytes } from "node:crypto";

import { AeadError } from "./aead.js";
import { utf8, wipe } from "./bytes.js";
import { BkvError, ProtocolError, WrongPasswordError } from "./errors.js";
import { DEFAULT_RETRY, Failover, type RetrySettings, type Routing } from "./failover.js";
import { checkKsf, ClientLogin, ClientRegistration, DEFAULT_KSF, type KsfParams, LoginFailed } from "./opaque.js";
import {
  blind,
  combine,
  decodeElement,
  encodeScalar,
  finalize,
  finalizeUnblinded,
  hashToGroup,
  lagrangeAtZero,
  mulBase,
  oprfInput,
  randomScalar,
  splitKey,
  verifyProof,
} from "./oprf.js";
import { openSealedKey, openTransported, resetPublicKey, resetSeed, sealKey, signReset } from "./sealing.js";
import { encryptShare, shareContext, verifyShareMap } from "./shares.js";
import { isAccountId, type TokenSource } from "./token.js";

/** Settings of a {@link VaultClient}. */
export interface ClientConfig {
  /** Client endpoints of the nodes (`https://host:port` or `host:port`); more than one gives failover. */
  endpoints: string[];
  /** The cluster CA certificate (PEM), the only trusted root. */
  caPem: string | Buffer;
  /** Gives the account token (a compact JWT) for each call. */
  token: TokenSource;
  /**
   * The pinned cluster identity key: 32 raw bytes or `identity.pub.pem` (SPKI PEM). Needed
   * to register (the share map is checked with it); recover, status and delete work without.
   */
  identityKey?: Uint8Array | string;
  /** The cluster name; by default the token's `aud`. When given, a token for another cluster is refused. */
  clusterName?: string;
  /** Argon2id parameters for new registrations (recoveries use the record's). Default: m 19456 KiB, t 2, p 1. */
  ksf?: KsfParams;
  /** `leader` (default): follow the leader nodes name; `sticky`: stay with whichever answered last. */
  routing?: Routing;
  /** Timeouts and retry budget. */
  retry?: Partial<RetrySettings>;
}

/** The result of a registration. */
export interface Registered {
  /** The active record version. */
  version: bigint;
  /** The backup key K (32 bytes) now behind the password. */
  backupKey: Uint8Array;
}

/** The result of a recovery. */
export interface Recovered {
  version: bigint;
  backupKey: Uint8Array;
}

/** What the vault holds for the account. */
export interface AccountStatus {
  state: "absent" | "active" | "destroyed";
  version: bigint;
  guessesUsed: number;
  guessLimit: number;
  stagedVersion: bigint;
}

type Bytes = Buffer;

interface RegisterStartResponse {
  registration_response: Bytes;
  share_map: { encoded: Bytes; signature: Bytes } | null;
  default_guess_limit: number;
  max_guess_limit: number;
}
interface RecoverStartResponse {
  version: string;
  charge: string;
  guesses_remaining: number;
  guess_limit: number;
  ksf: { m_cost_kib: number; t_cost: number; p_cost: number } | null;
  threshold: number;
  evaluations: { node_id: string; commitment: Bytes; evaluated_element: Bytes; proof: Bytes }[];
}

/** The identity key's 32 raw bytes from raw bytes or an SPKI PEM. */
export function parseIdentityKey(key: Uint8Array | string): Uint8Array {
  if (typeof key !== "string") {
    if (key.length !== 32) throw new BkvError("identity key: must be 32 bytes");
    return Uint8Array.from(key);
  }
  const k = createPublicKey(key);
  if (k.asymmetricKeyType !== "ed25519") throw new BkvError("identity key: not an Ed25519 key");
  const der = k.export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

function claimsOf(token: string): { sub: string; aud: string } {
  const part = token.split(".")[1];
  let claims: { sub?: unknown; aud?: unknown } = {};
  try {
    claims = JSON.parse(Buffer.from(part ?? "", "base64url").toString("utf8"));
  } catch {
    throw new BkvError("the account token is not a compact JWT");
  }
  if (typeof claims.sub !== "string" || !isAccountId(claims.sub)) throw new BkvError("the account token's sub is not an account id");
  if (typeof claims.aud !== "string") throw new BkvError("the account token has no aud");
  return { sub: claims.sub, aud: claims.aud };
}

function passwordBytes(password: string | Uint8Array): Uint8Array {
  return typeof password === "string" ? utf8(password) : Uint8Array.from(password);
}

/** A client of a bkv cluster for one account token. */
export class VaultClient {
  private readonly failover: Failover;
  private readonly identityKey?: Uint8Array;
  private readonly ksf: KsfParams;

  constructor(private readonly config: ClientConfig) {
    this.ksf = config.ksf ?? DEFAULT_KSF;
    checkKsf(this.ksf);
    this.identityKey = config.identityKey === undefined ? undefined : parseIdentityKey(config.identityKey);
    const ca = typeof config.caPem === "string" ? Buffer.from(config.caPem) : config.caPem;
    this.failover = new Failover(config.endpoints, ca, config.routing ?? "leader", { ...DEFAULT_RETRY, ...config.retry });
  }

  /** The endpoint (`host:port`) the next call starts at. */
  currentEndpoint(): string {
    return this.failover.preferredEndpoint();
  }

  /** Closes the connections. */
  close(): void {
    this.failover.close();
  }

  /** A token, and the account and cluster it names. */
  private async bearer(): Promise<{ token: string; account: string; cluster: string }> {
    const token = await this.config.token();
    const { sub, aud } = claimsOf(token);
    if (this.config.clusterName !== undefined && aud !== this.config.clusterName) {
      throw new BkvError(`the account token is for cluster ${JSON.stringify(aud)}, not ${JSON.stringify(this.config.clusterName)}`);
    }
    return { token, account: sub, cluster: aud };
  }

  private call<Res>(method: string, request: object, account: string): Promise<Res> {
    return this.failover.call<Res>(method, request, async () => {
      const b = await this.bearer();
      if (b.account !== account) throw new BkvError("the token source changed accounts during a call");
      return b.token;
    });
  }

  /**
   * Generates a backup key (or takes `backupKey`), registers it under `password` and
   * activates it; the account's previous active version is destroyed. `guessLimit`
   * undefined takes the cluster's default.
   */
  async register(password: string | Uint8Array, opts: { guessLimit?: number; backupKey?: Uint8Array } = {}): Promise<Registered> {
    const { account, cluster } = await this.bearer();
    if (!this.identityKey) throw new BkvError("no pinned cluster identity key: the share map cannot be checked");
    if (opts.guessLimit !== undefined && (!Number.isInteger(opts.guessLimit) || opts.guessLimit < 1)) {
      throw new BkvError("guess limit: must be at least 1");
    }
    const backupKey = opts.backupKey ? Uint8Array.from(opts.backupKey) : new Uint8Array(randomBytes(32));
    if (backupKey.length !== 32) throw new BkvError("backup key: must be 32 bytes");
    const accountBytes = utf8(account);
    const clusterBytes = utf8(cluster);

    // 1. Harden the password with a fresh per-account OPRF key k.
    const k = randomScalar();
    const input = oprfInput(accountBytes, passwordBytes(password));
    const y = finalizeUnblinded(input, hashToGroup(input).multiply(k));
    wipe(input);
    try {
      // A changed share map (STALE_SHARE_MAP) starts over from RegisterStart, a few times.
      for (let round = 0; ; round++) {
        const reg = ClientRegistration.start(y);
        const start = await this.call<RegisterStartResponse>("RegisterStart", { registration_request: Buffer.from(reg.request) }, account);
        if (!start.share_map) throw new ProtocolError("RegisterStart answered without a share map");
        const map = (() => {
          try {
            return verifyShareMap(start.share_map.encoded, start.share_map.signature, this.identityKey as Uint8Array, cluster);
          } catch (e) {
            throw new ProtocolError(`share map refused: ${(e as Error).message}`, { cause: e });
          }
        })();
        let finished: { upload: Uint8Array; exportKey: Uint8Array };
        try {
          finished = await reg.finish(start.registration_response, accountBytes, this.ksf);
        } catch (e) {
          throw new ProtocolError(`registration response refused: ${(e as Error).message}`, { cause: e });
        }
        const { upload, exportKey } = finished;
        const sealed = sealKey(exportKey, accountBytes, backupKey);
        const seed = resetSeed(exportKey);
        const resetPub = resetPublicKey(seed);
        wipe(exportKey, seed);
        let guessLimit = start.default_guess_limit;
        if (opts.guessLimit !== undefined) {
          if (opts.guessLimit > start.max_guess_limit) {
            throw new BkvError(`guess limit ${opts.guessLimit} is above the cluster's maximum ${start.max_guess_limit}`);
          }
          guessLimit = opts.guessLimit;
        }
        const xs = map.holders.map((h) => h.nodeId);
        const shares = splitKey(k, map.threshold, xs);
        const uploads = map.holders.map((h, i) => {
          const share = encodeScalar(shares[i] as bigint);
          const commitment = mulBase(shares[i] as bigint).toBytes();
          const ctx = shareContext(clusterBytes, accountBytes, h.nodeId, guessLimit, resetPub, commitment);
          const ciphertext = encryptShare(h.receiveKey, share, ctx);
          wipe(share);
          return { node_id: h.nodeId.toString(), commitment: Buffer.from(commitment), ciphertext: Buffer.from(ciphertext) };
        });
        const request = {
          request_id: randomBytes(16),
          registration_upload: Buffer.from(upload),
          sealed_key: Buffer.from(sealed),
          guess_limit: guessLimit,
          ksf: { m_cost_kib: this.ksf.mCostKib, t_cost: this.ksf.tCost, p_cost: this.ksf.pCost },
          share_map_epoch: map.epoch.toString(),
          shares: uploads,
          reset_public_key: Buffer.from(resetPub),
        };
        let staged: { version: string };
        try {
          staged = await this.call<{ version: string }>("RegisterFinish", request, account);
        } catch (e) {
          if (e instanceof BkvError && e.reason === "STALE_SHARE_MAP" && round < 3) continue;
          throw e;
        }
        const active = await this.call<{ version: string }>("Activate", { version: staged.version }, account);
        return { version: BigInt(active.version), backupKey };
      }
    } finally {
      wipe(y);
    }
  }

  /**
   * Recovers the backup key with `password`. Spends one guess; a wrong password throws
   * {@link WrongPasswordError} with the guesses left, a destroyed record DestroyedError,
   * no record NoRecordError.
   */
  async recover(password: string | Uint8Array): Promise<Recovered> {
    const { account, cluster } = await this.bearer();
    const accountBytes = utf8(account);
    const input = oprfInput(accountBytes, passwordBytes(password));
    try {
      // 1-2. Blind, and charge one guess. Retries resend exactly these bytes and this id.
      const b = blind(input);
      const attemptId = randomBytes(16);
      const start = await this.call<RecoverStartResponse>(
        "RecoverStart",
        { attempt_id: attemptId, blinded_element: Buffer.from(b.blinded.toBytes()) },
        account,
      );
      // 3. Check every evaluation against its commitment, combine, unblind.
      const y = (() => {
        try {
          return this.combineEvaluations(input, b.blind, b.blinded, start);
        } catch (e) {
          throw new ProtocolError(`the vault's evaluations are faulty (a guess was spent, nothing about the password learnt): ${(e as Error).message}`, { cause: e });
        }
      })();
      if (!start.ksf) throw new ProtocolError("RecoverStart answered without the record's Argon2id parameters");
      const ksf = { mCostKib: start.ksf.m_cost_kib, tCost: start.ksf.t_cost, pCost: start.ksf.p_cost };
      const version = BigInt(start.version);
      const charge = BigInt(start.charge);
      // 4. OPAQUE login start.
      const login = ClientLogin.start(y);
      wipe(y);
      const loginRes = await this.call<{ credential_response: Bytes; ticket: Bytes }>(
        "RecoverLogin",
        { attempt_id: attemptId, credential_request: Buffer.from(login.request) },
        account,
      );
      // 5. OPAQUE login finish: a failure is a wrong password; send nothing more.
      let done: { finalization: Uint8Array; sessionKey: Uint8Array; exportKey: Uint8Array };
      try {
        done = await login.finish(loginRes.credential_response, accountBytes, ksf);
      } catch (e) {
        if (e instanceof LoginFailed) {
          throw new WrongPasswordError(`wrong password: ${start.guesses_remaining} guesses remaining`, start.guesses_remaining, {
            reason: "WRONG_PASSWORD",
            cause: e,
          });
        }
        throw e;
      }
      // 6-7. Sign the reset, finish, open the transported key and then the sealed key.
      const seed = resetSeed(done.exportKey);
      const signature = signReset(seed, utf8(cluster), accountBytes, version, charge);
      wipe(seed);
      const fin = await this.call<{ transported_key: Bytes; version: string }>(
        "RecoverFinish",
        { ticket: loginRes.ticket, credential_finalization: Buffer.from(done.finalization), reset_signature: Buffer.from(signature) },
        account,
      );
      const finVersion = BigInt(fin.version);
      try {
        const sealed = openTransported(done.sessionKey, accountBytes, finVersion, fin.transported_key);
        const backupKey = openSealedKey(done.exportKey, accountBytes, sealed);
        if (backupKey.length !== 32) throw new ProtocolError(`the recovered key is ${backupKey.length} bytes, not 32`);
        return { version: finVersion, backupKey };
      } catch (e) {
        if (e instanceof AeadError) throw new ProtocolError(`the transported key does not open: ${e.message}`, { cause: e });
        throw e;
      } finally {
        wipe(done.sessionKey, done.exportKey);
      }
    } finally {
      wipe(input);
    }
  }

  private combineEvaluations(
    input: Uint8Array,
    r: bigint,
    blinded: ReturnType<typeof decodeElement>,
    start: RecoverStartResponse,
  ): Uint8Array {
    const t = start.threshold;
    if (t < 1 || start.evaluations.length !== t) throw new Error(`${start.evaluations.length} evaluations for threshold ${t}`);
    const seen = new Set<bigint>();
    const xs: bigint[] = [];
    const zs = start.evaluations.map((ev) => {
      const x = BigInt(ev.node_id);
      if (x === 0n || seen.has(x)) throw new Error("node ids of the evaluations are not distinct and nonzero");
      seen.add(x);
      xs.push(x);
      const K = decodeElement(ev.commitment, "commitment");
      const Z = decodeElement(ev.evaluated_element, "evaluated_element");
      if (!verifyProof(K, blinded, Z, ev.proof)) throw new Error(`the proof of node ${x} does not verify`);
      return Z;
    });
    const z = combine(lagrangeAtZero(xs), zs);
    return finalize(input, r, z);
  }

  /** What the vault holds for the account. */
  async status(): Promise<AccountStatus> {
    const { account } = await this.bearer();
    const s = await this.call<{ state: string; version: string; guesses_used: number; guess_limit: number; staged_version: string }>(
      "Status",
      {},
      account,
    );
    const state = s.state === "RECORD_STATE_ACTIVE" ? "active" : s.state === "RECORD_STATE_DESTROYED" ? "destroyed" : "absent";
    return {
      state,
      version: BigInt(s.version),
      guessesUsed: s.guesses_used,
      guessLimit: s.guess_limit,
      stagedVersion: BigInt(s.staged_version),
    };
  }

  /** Removes every version of the account's record; whether there was anything. */
  async delete(): Promise<boolean> {
    const { account } = await this.bearer();
    const d = await this.call<{ existed: boolean }>("Delete", {}, account);
    return d.existed;
  }
}
