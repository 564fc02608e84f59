// Backup files on disk: encrypt a file (or any stream) into a backup file, and restore one
// into a file that appears only once the whole backup authenticated.
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { decryptStream, type EncryptOptions, encryptStream } from "./format.js";

/**
 * Refuses an output that exists and is not a regular file (a device such as /dev/null, a
 * pipe, a directory): renaming the temporary file into place would replace it. Stream to
 * those with encryptStream / decryptStream instead.
 */
async function checkOutput(path: string): Promise<void> {
  let s;
  try {
    s = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (!s.isFile()) {
    throw new Error(`${path} exists and is not a regular file: refusing to replace it (stream to it with encryptStream/decryptStream)`);
  }
}

function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
}

/** Progress callback: bytes of input processed so far. */
export type Progress = (bytes: number) => void;

async function* counted(source: AsyncIterable<Uint8Array>, progress?: Progress): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const piece of source) {
    n += piece.length;
    progress?.(n);
    yield piece;
  }
}

/**
 * Encrypts `input` (a path or a stream of bytes) under K into the backup file `output`,
 * written under a temporary name and renamed into place once complete (an existing regular
 * file is replaced; anything else is refused).
 */
export async function encryptToFile(key: Uint8Array, input: string | AsyncIterable<Uint8Array>, output: string, opts: EncryptOptions & { progress?: Progress } = {}): Promise<void> {
  await checkOutput(output);
  const source = typeof input === "string" ? createReadStream(input, { highWaterMark: 64 * 1024 }) : input;
  const tmp = tempNameFor(output);
  try {
    await pipeline(Readable.from(encryptStream(key, counted(source, opts.progress), opts)), createWriteStream(tmp));
    await rename(tmp, output);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Restores the backup file `input` under K into `output`: written to a temporary file and
 * renamed into place only when the last chunk authenticated; removed on any error. An
 * existing output that is not a regular file is refused.
 */
export async function decryptToFile(key: Uint8Array, input: string, output: string, opts: { progress?: Progress } = {}): Promise<void> {
  await checkOutput(output);
  const tmp = tempNameFor(output);
  try {
    await pipeline(Readable.from(decryptStream(key, counted(createReadStream(input, { highWaterMark: 64 * 1024 }), opts.progress))), createWriteStream(tmp));
    await rename(tmp, output);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
