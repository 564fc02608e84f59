// Typed errors of the SDK, made from the vault's gRPC statuses: the code, and the
// `google.rpc.Status` in `grpc-status-details-bin` (docs/PROTOCOL.md §6) with its
// ErrorInfo reason and metadata, BadRequest and RetryInfo.
import { status as Code, type Metadata, type ServiceError } from "@grpc/grpc-js";

import { rpcTypes } from "./proto.js";

/** What `grpc-status-details-bin` holds, decoded. */
export interface ErrorDetails {
  code: number;
  message: string;
  /** ErrorInfo `reason` (UPPER_SNAKE), if any. */
  reason?: string;
  /** ErrorInfo `domain` ("bkv"). */
  domain?: string;
  /** ErrorInfo metadata (`field`, `claim`, `guessesRemaining`, `leader`). */
  metadata: Record<string, string>;
  /** BadRequest's field violations. */
  fieldViolations: { field: string; description: string; reason: string }[];
  /** RetryInfo's delay in milliseconds. */
  retryDelayMs?: number;
}

/** Decodes a `grpc-status-details-bin` value (an encoded `google.rpc.Status`). */
export function decodeStatusDetails(bytes: Uint8Array): ErrorDetails {
  const root = rpcTypes();
  const Status = root.lookupType("google.rpc.Status");
  const st = Status.decode(bytes) as unknown as {
    code?: number;
    message?: string;
    details?: { type_url: string; value: Uint8Array }[];
  };
  const out: ErrorDetails = { code: st.code ?? 0, message: st.message ?? "", metadata: {}, fieldViolations: [] };
  for (const any of st.details ?? []) {
    const name = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    if (name === "google.rpc.ErrorInfo") {
      const info = root.lookupType(name).decode(any.value) as unknown as {
        reason?: string;
        domain?: string;
        metadata?: Record<string, string>;
      };
      out.reason = info.reason;
      out.domain = info.domain;
      out.metadata = { ...(info.metadata ?? {}) };
    } else if (name === "google.rpc.BadRequest") {
      const br = root.lookupType(name).decode(any.value) as unknown as {
        field_violations?: { field?: string; description?: string; reason?: string }[];
      };
      for (const v of br.field_violations ?? []) {
        out.fieldViolations.push({ field: v.field ?? "", description: v.description ?? "", reason: v.reason ?? "" });
      }
    } else if (name === "google.rpc.RetryInfo") {
      const ri = root.lookupType(name).decode(any.value) as unknown as {
        retry_delay?: { seconds?: number | { toNumber(): number }; nanos?: number };
      };
      const d = ri.retry_delay;
      if (d) {
        const secs = typeof d.seconds === "object" ? d.seconds.toNumber() : (d.seconds ?? 0);
        out.retryDelayMs = secs * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
      }
    }
  }
  return out;
}

/** Every error the SDK throws. `code` is the gRPC status code when the vault answered. */
export class BkvError extends Error {
  override name = "BkvError";
  /** gRPC status code (`status` of @grpc/grpc-js), or undefined for local failures. */
  readonly code?: number;
  /** The ErrorInfo reason word, when the vault sent one. */
  readonly reason?: string;
  /** The decoded details, when the vault sent them. */
  readonly details?: ErrorDetails;

  constructor(message: string, opts: { code?: number; reason?: string; details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = opts.code;
    this.reason = opts.reason;
    this.details = opts.details;
  }
}

/** PERMISSION_DENIED `WRONG_PASSWORD`: the password was wrong; `guessesRemaining` more tries. */
export class WrongPasswordError extends BkvError {
  override name = "WrongPasswordError";
  constructor(
    message: string,
    /** Guesses left before the record is destroyed. */
    readonly guessesRemaining: number,
    opts: ConstructorParameters<typeof BkvError>[1] = {},
  ) {
    super(message, opts);
  }
}

/** FAILED_PRECONDITION `DESTROYED`: the record was destroyed after its last guess. */
export class DestroyedError extends BkvError {
  override name = "DestroyedError";
}

/** NOT_FOUND `NO_RECORD`: no active record for the account. */
export class NoRecordError extends BkvError {
  override name = "NoRecordError";
}

/** UNAUTHENTICATED: the token was refused; `claim` names the claim at fault, if one. */
export class TokenRefusedError extends BkvError {
  override name = "TokenRefusedError";
  get claim(): string | undefined {
    return this.details?.metadata.claim;
  }
}

/** INVALID_ARGUMENT: a request field was malformed (a client bug); `field` names it. */
export class InvalidArgumentError extends BkvError {
  override name = "InvalidArgumentError";
  get field(): string | undefined {
    return this.details?.metadata.field;
  }
}

/** RESOURCE_EXHAUSTED `RATE_LIMITED`: wait `retryDelayMs`. */
export class RateLimitedError extends BkvError {
  override name = "RateLimitedError";
  get retryDelayMs(): number | undefined {
    return this.details?.retryDelayMs;
  }
}

/** The vault answered in a way the protocol forbids (bad share map, bad proof, bad sizes). */
export class ProtocolError extends BkvError {
  override name = "ProtocolError";
}

/** No node answered usefully within the retry budget (UNAVAILABLE, unreachable, timed out). */
export class UnavailableError extends BkvError {
  override name = "UnavailableError";
  constructor(
    message: string,
    /** Attempts made. */
    readonly attempts: number,
    opts: ConstructorParameters<typeof BkvError>[1] = {},
  ) {
    super(message, opts);
  }
}

/** The decoded details of a grpc-js error, when it carries `grpc-status-details-bin`. */
export function detailsOf(metadata: Metadata | undefined): ErrorDetails | undefined {
  const raw = metadata?.get("grpc-status-details-bin")[0];
  if (raw === undefined || typeof raw === "string") return undefined;
  try {
    return decodeStatusDetails(raw);
  } catch {
    return undefined;
  }
}

/** The typed error for a status the vault answered with. */
export function fromStatus(err: ServiceError): BkvError {
  const details = detailsOf(err.metadata);
  const reason = details?.reason;
  const message = details?.message || err.details || err.message;
  const opts = { code: err.code, reason, details, cause: err };
  switch (err.code) {
    case Code.PERMISSION_DENIED:
      if (reason === "WRONG_PASSWORD") {
        const left = Number.parseInt(details?.metadata.guessesRemaining ?? "", 10);
        return new WrongPasswordError(message, Number.isFinite(left) ? left : 0, opts);
      }
      break;
    case Code.FAILED_PRECONDITION:
      if (reason === "DESTROYED") return new DestroyedError(message, opts);
      break;
    case Code.NOT_FOUND:
      if (reason === "NO_RECORD") return new NoRecordError(message, opts);
      break;
    case Code.UNAUTHENTICATED:
      return new TokenRefusedError(message, opts);
    case Code.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, opts);
    case Code.RESOURCE_EXHAUSTED:
      return new RateLimitedError(message, opts);
    default:
      break;
  }
  return new BkvError(message, opts);
}
