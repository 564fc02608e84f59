// The 64-digit recovery key (docs/BACKUP_FORMAT.md §6): 62 random digits and two ISO 7064
// MOD 97-10 check digits, shown in 16 groups of 4; K is derived from the digits with
// HKDF-SHA256.
import { randomInt } from "node:crypto";

import { hkdf } from "../aead.js";
import { utf8 } from "../bytes.js";

/** A recovery key that cannot be read back. Never carries the digits. */
export class RecoveryCodeError extends Error {
  override name = "RecoveryCodeError";
}

/** The two check digits of 62 digits: `98 - (r * 100 mod 97)`, as two characters. */
export function checkDigits(digits62: string): string {
  if (!/^[0-9]{62}$/.test(digits62)) throw new RecoveryCodeError("need 62 digits");
  const check = 98n - ((BigInt(digits62) * 100n) % 97n);
  return check.toString().padStart(2, "0");
}

/** A fresh recovery key: 64 digits (62 from the CSPRNG, each uniform in 0-9, then the check). */
export function generateRecoveryCode(): string {
  let digits = "";
  for (let i = 0; i < 62; i++) digits += String(randomInt(0, 10));
  return digits + checkDigits(digits);
}

/** 16 groups of 4 digits separated by spaces. */
export function formatRecoveryCode(digits64: string): string {
  return (digits64.match(/.{1,4}/g) ?? []).join(" ");
}

/**
 * Reads a typed recovery key: spaces, tabs, line breaks and `-` are ignored; any other
 * character is refused naming its position (from 1); then the count (64) and the check.
 */
export function parseRecoveryCode(typed: string): string {
  let digits = "";
  let position = 0;
  for (const ch of typed) {
    position++;
    if (ch >= "0" && ch <= "9") digits += ch;
    else if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || ch === "-") continue;
    else throw new RecoveryCodeError(`the recovery key has an invalid character at character ${position}: only digits 0-9, spaces and dashes are allowed`);
  }
  if (digits.length !== 64) throw new RecoveryCodeError(`the recovery key has ${digits.length} digits, not 64`);
  if (BigInt(digits) % 97n !== 1n) throw new RecoveryCodeError("the recovery key's check digits do not match: a digit is mistyped");
  return digits;
}

/** `K = HKDF-SHA256(salt = none, ikm = the 64 ASCII digits, info = "bkv/recovery-code/v1", 32)`. */
export function keyFromRecoveryCode(typed: string): Uint8Array {
  const digits = parseRecoveryCode(typed);
  return hkdf("sha256", utf8(digits), new Uint8Array(0), utf8("bkv/recovery-code/v1"), 32);
}
