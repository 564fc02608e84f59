// Loads the contract's test vectors (testdata/vectors/*.json at the repository's root).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's testdata/vectors directory (from dist/test/). */
export const VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "testdata", "vectors");

/** One vector file, parsed. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function vectors(name: string): any {
  return JSON.parse(readFileSync(join(VECTORS_DIR, name), "utf8"));
}
