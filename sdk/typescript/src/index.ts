// The public API of the bkv TypeScript SDK.
export { type AccountStatus, type ClientConfig, parseIdentityKey, type Recovered, type Registered, VaultClient } from "./client.js";
export {
  BkvError,
  decodeStatusDetails,
  DestroyedError,
  type ErrorDetails,
  InvalidArgumentError,
  NoRecordError,
  ProtocolError,
  RateLimitedError,
  TokenRefusedError,
  UnavailableError,
  WrongPasswordError,
} from "./errors.js";
export { DEFAULT_RETRY, type RetrySettings, type Routing } from "./failover.js";
export { DEFAULT_KSF, type KsfParams, LIGHT_KSF } from "./opaque.js";
export { type Claims, devTokenSource, issueToken, readIssuerKey, type TokenSource } from "./token.js";
