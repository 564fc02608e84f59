// The backup format, version 1 (docs/BACKUP_FORMAT.md §2-5): a 74-byte header with its
// HMAC, per-file keys from K and a random salt, and AES-256-GCM chunks in the STREAM
// construction. Both directions stream: one chunk in memory, whatever the size.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";

import { hkdf } from "../aead.js";
import { ctEqual, utf8, wipe } from "../bytes.js";
import { DEFAULT_COLLECT_EVERY, MemoryKeeper } from "./memory.js";

export const MAGIC = Buffer.from("BKVB", "ascii");
export const HEADER_LEN = 74;
export const DEFAULT_CHUNK_SIZE = 65536;
export const MIN_CHUNK_SIZE = 16;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const TAG_LEN = 16;
const MAX_CHUNKS = 2 ** 32;

/** Why a backup cannot be read (or written), named as docs/BACKUP_FORMAT.md §5 names them. */
export type StreamErrorKind =
  | "NotABackup"
  | "UnsupportedVersion"
  | "UnsupportedAlgorithm"
  | "BadChunkSize"
  | "WrongKey"
  | "Truncated"
  | "TrailingData"
  | "Corrupted"
  | "TooLong";

/** A backup refused; `chunk` (or `chunks` for Truncated: the chunks that authenticated). */
export class StreamError extends Error {
  override name = "StreamError";
  constructor(
    readonly kind: StreamErrorKind,
    message: string,
    readonly chunk?: number,
  ) {
    super(message);
  }
}

/** The per-file keys: HKDF-SHA256(salt, K, "bkv/backup-file/v1", 71) split 32/32/7. */
export function fileKeys(key: Uint8Array, salt: Uint8Array): { headerKey: Uint8Array; payloadKey: Uint8Array; noncePrefix: Uint8Array; okm: Uint8Array } {
  if (key.length !== 32) throw new RangeError("the backup key must be 32 bytes");
  const okm = hkdf("sha256", key, salt, utf8("bkv/backup-file/v1"), 71);
  return { okm, headerKey: okm.slice(0, 32), payloadKey: okm.slice(32, 64), noncePrefix: okm.slice(64, 71) };
}

/** `nonce_prefix || u32be(i) || last`. */
export function chunkNonce(prefix: Uint8Array, index: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.set(prefix, 0);
  n.writeUInt32BE(index, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** The 42-byte header prefix and its MAC. */
export function header(headerKey: Uint8Array, chunkSize: number, salt: Uint8Array): Buffer {
  const prefix = Buffer.alloc(42);
  MAGIC.copy(prefix, 0);
  prefix[4] = 1;
  prefix[5] = 1;
  prefix.writeUInt32BE(chunkSize, 6);
  prefix.set(salt, 10);
  const mac = createHmac("sha256", headerKey).update(prefix).digest();
  return Buffer.concat([prefix, mac]);
}

/** A sealed chunk as its two parts, ciphertext and tag (written back to back). */
function sealChunk(payloadKey: Uint8Array, nonce: Buffer, plaintext: Uint8Array): [Buffer, Buffer] {
  const c = createCipheriv("aes-256-gcm", payloadKey, nonce, { authTagLength: TAG_LEN });
  const body = c.update(plaintext);
  c.final();
  return [body, c.getAuthTag()];
}

/**
 * Opens a sealed chunk given as consecutive views (ciphertext then the 16-byte tag, split
 * anywhere): its plaintext pieces once the tag verified, else undefined.
 */
function openChunk(payloadKey: Uint8Array, nonce: Buffer, sealed: Buffer[], sealedLength: number): Buffer[] | undefined {
  const d = createDecipheriv("aes-256-gcm", payloadKey, nonce, { authTagLength: TAG_LEN });
  const bodyLength = sealedLength - TAG_LEN;
  const tag = Buffer.alloc(TAG_LEN);
  const out: Buffer[] = [];
  let at = 0;
  for (const part of sealed) {
    const inBody = Math.max(0, Math.min(part.length, bodyLength - at));
    if (inBody > 0) out.push(d.update(part.subarray(0, inBody)));
    if (inBody < part.length) part.copy(tag, at + inBody - bodyLength, inBody);
    at += part.length;
  }
  d.setAuthTag(tag);
  try {
    d.final();
  } catch {
    for (const b of out) b.fill(0);
    return undefined;
  }
  return out;
}

/** A FIFO of byte buffers that hands out exact lengths without copying the whole. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.length));
    this.length += b.length;
  }

  /**
   * Takes exactly `n` bytes (n <= length): a view of the first buffer pushed when it holds
   * them all (no copy), else a copy.
   */
  take(n: number): Buffer {
    const first = this.parts[0];
    if (first && first.length >= n) {
      if (first.length === n) this.parts.shift();
      else this.parts[0] = first.subarray(n);
      this.length -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const head = this.parts[0] as Buffer;
      const k = Math.min(head.length, n - at);
      head.copy(out, at, 0, k);
      at += k;
      if (k === head.length) this.parts.shift();
      else this.parts[0] = head.subarray(k);
    }
    this.length -= n;
    return out;
  }

  /** Takes exactly `n` bytes (n <= length) as views of the buffers pushed, without copying. */
  takeViews(n: number): Buffer[] {
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = this.parts[0] as Buffer;
      const k = Math.min(head.length, left);
      out.push(head.subarray(0, k));
      if (k === head.length) this.parts.shift();
      else this.parts[0] = head.subarray(k);
      left -= k;
    }
    this.length -= n;
    return out;
  }

  /** The first `n` bytes (or fewer), without taking them. */
  peek(n: number): Buffer {
    const out: Buffer[] = [];
    let left = n;
    for (const p of this.parts) {
      if (left <= 0) break;
      out.push(p.subarray(0, left));
      left -= Math.min(left, p.length);
    }
    return Buffer.concat(out);
  }
}

/** Options of {@link encryptStream}. */
export interface EncryptOptions {
  /** Plaintext bytes per chunk, 16 to 16 MiB; 65536 by default. */
  chunkSize?: number;
  /** The file's salt (32 bytes); fresh random by default. For the test vectors only. */
  salt?: Uint8Array;
  /** A young-generation collection after this many bytes (memory.ts); 0 never. Default 1 MiB. */
  collectEvery?: number;
}

/**
 * Encrypts a stream of plaintext under K into the backup format: the header, then the
 * sealed chunks. Holds at most one chunk (plus what one source read gives) in memory.
 */
export async function* encryptStream(key: Uint8Array, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts: EncryptOptions = {}): AsyncGenerator<Buffer> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new StreamError("BadChunkSize", `chunk size ${chunkSize} is out of range (16 to 16 MiB)`);
  }
  const salt = opts.salt ?? randomBytes(32);
  if (salt.length !== 32) throw new RangeError("the salt must be 32 bytes");
  const keys = fileKeys(key, salt);
  try {
    yield header(keys.headerKey, chunkSize, salt);
    const memory = new MemoryKeeper(opts.collectEvery ?? DEFAULT_COLLECT_EVERY);
    const queue = new ByteQueue();
    let index = 0;
    for await (const piece of source) {
      queue.push(piece);
      // A full chunk is sealed as not-last only once a byte after it is known.
      while (queue.length > chunkSize) {
        if (index >= MAX_CHUNKS - 1) throw new StreamError("TooLong", "a backup holds at most 2^32 chunks");
        // The plaintext is the caller's (or a view of it): not ours to wipe.
        const plain = queue.take(chunkSize);
        const [body, tag] = sealChunk(keys.payloadKey, chunkNonce(keys.noncePrefix, index, false), plain);
        yield body;
        yield tag;
        memory.add(chunkSize);
        index++;
      }
    }
    const [body, tag] = sealChunk(keys.payloadKey, chunkNonce(keys.noncePrefix, index, true), queue.take(queue.length));
    yield body;
    yield tag;
  } finally {
    wipe(keys.okm, keys.headerKey, keys.payloadKey);
  }
}

/** Reads and checks a header: the file keys and chunk size, or the §2 refusal. */
function openHeader(key: Uint8Array, h: Buffer): { payloadKey: Uint8Array; noncePrefix: Uint8Array; chunkSize: number; okm: Uint8Array; headerKey: Uint8Array } {
  if (!h.subarray(0, 4).equals(MAGIC)) throw new StreamError("NotABackup", "not a bkv backup (no BKVB magic)");
  if (h[4] !== 1) throw new StreamError("UnsupportedVersion", `backup format version ${h[4]} is not supported`);
  if (h[5] !== 1) throw new StreamError("UnsupportedAlgorithm", `backup algorithm ${h[5]} is not supported`);
  const chunkSize = h.readUInt32BE(6);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) throw new StreamError("BadChunkSize", `chunk size ${chunkSize} is out of range`);
  const keys = fileKeys(key, h.subarray(10, 42));
  const mac = createHmac("sha256", keys.headerKey).update(h.subarray(0, 42)).digest();
  if (!ctEqual(mac, h.subarray(42, 74))) {
    wipe(keys.okm, keys.headerKey, keys.payloadKey);
    throw new StreamError("WrongKey", "the backup's header does not verify: another key, or an altered header");
  }
  return { ...keys, chunkSize };
}

/**
 * Decrypts a backup under K, yielding each chunk's plaintext once it authenticated. What
 * it yields is provisional until the generator returns: only then did the last chunk open.
 */
export async function* decryptStream(
  key: Uint8Array,
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: { collectEvery?: number } = {},
): AsyncGenerator<Buffer> {
  const memory = new MemoryKeeper(opts.collectEvery ?? DEFAULT_COLLECT_EVERY);
  const queue = new ByteQueue();
  const it = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<Uint8Array>)[Symbol.iterator]()) as
    | AsyncIterator<Uint8Array>
    | Iterator<Uint8Array>;
  let ended = false;
  // Reads until the queue holds more than `want` bytes or the input ends.
  const fill = async (want: number): Promise<void> => {
    while (!ended && queue.length <= want) {
      const r = await it.next();
      if (r.done) ended = true;
      else queue.push(r.value);
    }
  };
  await fill(HEADER_LEN - 1);
  if (queue.length < HEADER_LEN) {
    const got = queue.peek(4);
    if (got.length > 0 && got.equals(MAGIC.subarray(0, got.length))) {
      throw new StreamError("Truncated", "the backup ends inside its header", 0);
    }
    throw new StreamError("NotABackup", "not a bkv backup (empty, or no BKVB magic)");
  }
  const keys = openHeader(key, queue.take(HEADER_LEN));
  const sealedLen = keys.chunkSize + TAG_LEN;
  try {
    for (let index = 0; ; index++) {
      // One byte past a full sealed chunk tells whether another chunk follows.
      await fill(sealedLen);
      const last = queue.length <= sealedLen;
      if (last && queue.length < TAG_LEN) {
        throw new StreamError("Truncated", `the backup is cut short after ${index} chunks`, index);
      }
      if (index >= MAX_CHUNKS) throw new StreamError("TooLong", "more than 2^32 chunks");
      const length = last ? queue.length : sealedLen;
      const sealed = queue.takeViews(length);
      const plain = openChunk(keys.payloadKey, chunkNonce(keys.noncePrefix, index, last), sealed, length);
      if (plain) {
        if (last && length === TAG_LEN && index > 0) {
          throw new StreamError("Corrupted", `chunk ${index} is an empty last chunk after others`, index);
        }
        for (const piece of plain) yield piece;
        if (last) return;
        memory.add(sealedLen);
        continue;
      }
      // A cut or an extension opens with the other flag; its plaintext is discarded.
      const other = openChunk(keys.payloadKey, chunkNonce(keys.noncePrefix, index, !last), sealed, length);
      if (other) {
        for (const b of other) b.fill(0);
        if (last) throw new StreamError("Truncated", `the backup is cut short after ${index + 1} chunks`, index + 1);
        throw new StreamError("TrailingData", `bytes follow the last chunk (${index})`, index);
      }
      throw new StreamError("Corrupted", `chunk ${index} does not authenticate (altered, cut, moved, or from another backup)`, index);
    }
  } finally {
    wipe(keys.okm, keys.headerKey, keys.payloadKey);
  }
}
