// The backup journey (docs/BACKUP_FORMAT.md §6-7): enable an end-to-end encrypted backup
// with a backup key K behind a password in the vault or shown as a 64-digit recovery key,
// and get K back on a new device with the password or the recovery key.
import { randomBytes } from "node:crypto";

import type { VaultClient } from "../client.js";
import { formatRecoveryCode, generateRecoveryCode, keyFromRecoveryCode } from "./recoveryCode.js";

/** A backup key and how it is protected. */
export interface EnabledBackup {
  /** K, 32 bytes: encrypt backups with it. */
  key: Uint8Array;
  /** With a password: the vault's record version that holds K. */
  version?: bigint;
  /** With a recovery key: the 64 digits in 16 groups, to show the person once. */
  recoveryCode?: string;
}

/**
 * Generates K and registers it under `password` (a registration: it replaces the account's
 * previous K, so backups made under that one can no longer be restored).
 */
export async function enableBackupWithPassword(client: VaultClient, password: string | Uint8Array, opts: { guessLimit?: number } = {}): Promise<EnabledBackup> {
  const key = new Uint8Array(randomBytes(32));
  const r = await client.register(password, { guessLimit: opts.guessLimit, backupKey: key });
  return { key: r.backupKey, version: r.version };
}

/** K from the vault with the password (spends a guess; a wrong one throws WrongPasswordError). */
export async function restoreKeyWithPassword(client: VaultClient, password: string | Uint8Array): Promise<{ key: Uint8Array; version: bigint }> {
  const r = await client.recover(password);
  return { key: r.backupKey, version: r.version };
}

/** A fresh recovery key and the K it stands for; nothing goes to the vault. */
export function enableBackupWithRecoveryCode(): EnabledBackup {
  const digits = generateRecoveryCode();
  return { key: keyFromRecoveryCode(digits), recoveryCode: formatRecoveryCode(digits) };
}

/** K from a typed recovery key (RecoveryCodeError on a typo). */
export function restoreKeyWithCode(typed: string): Uint8Array {
  return keyFromRecoveryCode(typed);
}
