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
export { decryptToFile, encryptToFile, type Progress } from "./backup/files.js";
export { decryptStream, DEFAULT_CHUNK_SIZE, type EncryptOptions, encryptStream, StreamError, type StreamErrorKind } from "./backup/format.js";
export {
  type EnabledBackup,
  enableBackupWithPassword,
  enableBackupWithRecoveryCode,
  restoreKeyWithCode,
  restoreKeyWithPassword,
} from "./backup/journey.js";
export { formatRecoveryCode, generateRecoveryCode, keyFromRecoveryCode, parseRecoveryCode, RecoveryCodeError } from "./backup/recoveryCode.js";
