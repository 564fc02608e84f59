// Copies the contract's proto files (the repository's proto/ directory) into dist/proto, so
// that the built package loads the very files the nodes were built from.
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repoProto = join(here, "..", "..", "..", "proto");
const out = join(here, "..", "dist", "proto");
const files = [
  "bkv/v1/vault.proto",
  "google/rpc/status.proto",
  "google/rpc/error_details.proto",
];
if (!existsSync(repoProto)) {
  throw new Error(`proto directory not found at ${repoProto}`);
}
for (const f of files) {
  mkdirSync(dirname(join(out, f)), { recursive: true });
  cpSync(join(repoProto, f), join(out, f));
}
