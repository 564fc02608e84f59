// Calls to the cluster's nodes with the contract's retry rules (docs/PROTOCOL.md §7):
// UNAVAILABLE and failures to get an answer are retried with the same bytes on the next
// node (or straight at a leader a node names), with backoff, within a per-attempt timeout,
// an attempt budget and a deadline; RESOURCE_EXHAUSTED waits its RetryInfo delay; any
// other status is an answer and goes back to the caller.
import * as grpc from "@grpc/grpc-js";
import { randomInt } from "node:crypto";

import { BkvError, detailsOf, fromStatus, UnavailableError } from "./errors.js";
import { vaultService } from "./proto.js";

/** Where calls go while every node answers. */
export type Routing = "leader" | "sticky";

/** Retry and timeout settings. */
export interface RetrySettings {
  /** Longest wait for one attempt of one RPC (ms). */
  callTimeoutMs: number;
  /** Longest time one SDK call may take, retries included (ms). */
  deadlineMs: number;
  /** Attempts per RPC at most. */
  maxAttempts: number;
  /** First backoff (ms); doubles per retry up to `maxBackoffMs`, up to half taken off at random. */
  baseBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetrySettings = {
  callTimeoutMs: 10_000,
  deadlineMs: 30_000,
  maxAttempts: 32,
  baseBackoffMs: 50,
  maxBackoffMs: 2_000,
};

/** The metadata key of the leader hint. */
export const LEADER_METADATA = "bkv-leader";

interface Target {
  authority: string;
  client: grpc.Client;
}

/** The lowercase `host:port` of `https://host:port[/]` or `host:port`. */
export function authorityOf(endpoint: string): string {
  let s = endpoint.trim();
  const scheme = s.indexOf("://");
  if (scheme >= 0) s = s.slice(scheme + 3);
  const slash = s.indexOf("/");
  if (slash >= 0) s = s.slice(0, slash);
  return s.toLowerCase();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The nodes of one cluster and the retry rules. */
export class Failover {
  private readonly targets: Target[];
  private preferred = 0;

  constructor(
    endpoints: string[],
    caPem: Buffer,
    private readonly routing: Routing,
    private readonly retry: RetrySettings,
  ) {
    if (endpoints.length === 0) throw new BkvError("no endpoints given");
    const Vault = vaultService();
    // Server-authenticated TLS: the cluster CA is the only root, no client certificate.
    const creds = grpc.credentials.createSsl(caPem);
    this.targets = endpoints.map((e) => {
      const authority = authorityOf(e);
      return {
        authority,
        client: new Vault(authority, creds, {
          "grpc.initial_reconnect_backoff_ms": 100,
          "grpc.max_reconnect_backoff_ms": 1000,
        }),
      };
    });
  }

  /** The `host:port` the next call starts at. */
  preferredEndpoint(): string {
    return (this.targets[this.preferred % this.targets.length] as Target).authority;
  }

  /** Closes every channel. */
  close(): void {
    for (const t of this.targets) t.client.close();
  }

  private targetOf(hint: string | undefined): number | undefined {
    if (!hint) return undefined;
    const a = authorityOf(hint);
    const i = this.targets.findIndex((t) => t.authority === a);
    return i >= 0 ? i : undefined;
  }

  private follow(headers: grpc.Metadata | undefined): void {
    if (this.routing !== "leader" || !headers) return;
    const v = headers.get(LEADER_METADATA)[0];
    const i = this.targetOf(typeof v === "string" ? v : undefined);
    if (i !== undefined) this.preferred = i;
  }

  private backoff(retry: number): number {
    const full = Math.min(this.retry.maxBackoffMs, this.retry.baseBackoffMs * 2 ** Math.min(retry, 20));
    return full - randomInt(0, Math.floor(full / 2) + 1);
  }

  private attempt<Res>(t: Target, method: string, request: object, md: grpc.Metadata, timeoutMs: number): Promise<{ res: Res; headers?: grpc.Metadata }> {
    return new Promise((resolve, reject) => {
      let headers: grpc.Metadata | undefined;
      const fn = (t.client as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>)[method];
      if (!fn) throw new BkvError(`no method ${method}`);
      const call = fn.call(t.client, request, md, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: Res) => {
        if (err) reject(err);
        else resolve({ res, headers });
      });
      call.on("metadata", (m: grpc.Metadata) => {
        headers = m;
      });
    });
  }

  /**
   * Sends `request` (always these bytes) to `method` until it is answered, with a fresh
   * `authorization` header from `bearer` on each attempt.
   */
  async call<Res>(method: string, request: object, bearer: () => Promise<string>): Promise<Res> {
    const until = Date.now() + this.retry.deadlineMs;
    const n = this.targets.length;
    let index = this.preferred % n;
    let retries = 0;
    let attempts = 0;
    let hopped = false;
    let last = "deadline reached before the first attempt";
    while (attempts < Math.max(1, this.retry.maxAttempts)) {
      const remaining = until - Date.now();
      if (remaining <= 0) break;
      attempts++;
      const target = this.targets[index] as Target;
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${await bearer()}`);
      let err: grpc.ServiceError;
      try {
        const { res, headers } = await this.attempt<Res>(target, method, request, md, Math.min(this.retry.callTimeoutMs, remaining));
        this.preferred = index;
        this.follow(headers);
        return res;
      } catch (e) {
        err = e as grpc.ServiceError;
      }
      const details = detailsOf(err.metadata);
      let wait: number;
      if (err.code === grpc.status.RESOURCE_EXHAUSTED) {
        // Rate limited, no guess charged: the same bytes again once the delay has passed.
        const delay = details?.retryDelayMs;
        if (delay === undefined || delay >= until - Date.now()) throw fromStatus(err);
        last = `${target.authority}: ${err.details}`;
        await sleep(delay);
        continue;
      }
      if (err.code !== grpc.status.UNAVAILABLE && err.code !== grpc.status.DEADLINE_EXCEEDED) {
        throw fromStatus(err);
      }
      last = `${target.authority}: ${grpc.status[err.code]}: ${err.details}`;
      const hintValue = err.metadata?.get(LEADER_METADATA)[0];
      const hint = details?.metadata.leader ?? (typeof hintValue === "string" ? hintValue : undefined);
      const hinted = this.targetOf(hint);
      if (hinted !== undefined && hinted !== index && !hopped) {
        // One hop straight to a named leader; two in a row wait as usual.
        index = hinted;
        this.preferred = hinted;
        hopped = true;
        wait = 0;
      } else {
        index = hinted !== undefined && hinted !== index ? hinted : (index + 1) % n;
        hopped = false;
        wait = Math.max(this.backoff(retries), details?.retryDelayMs ?? 0);
        retries++;
      }
      if (wait > 0) {
        if (wait >= until - Date.now()) break;
        await sleep(wait);
      }
    }
    throw new UnavailableError(`no node answered after ${attempts} attempts: ${last}`, attempts, { code: grpc.status.UNAVAILABLE });
  }
}
