// The contract's proto files (copied into dist/proto at build time from the repository's
// proto/): the Vault service for @grpc/grpc-js through @grpc/proto-loader, and the
// google.rpc messages of the error details through protobufjs.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

/** Where the proto files are: dist/proto, next to dist/src. */
export const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "proto");

let vault: grpc.ServiceClientConstructor | undefined;
let rpc: protobuf.Root | undefined;

/** The generic client constructor of `bkv.v1.Vault`. */
export function vaultService(): grpc.ServiceClientConstructor {
  if (!vault) {
    const def = protoLoader.loadSync("bkv/v1/vault.proto", {
      includeDirs: [PROTO_DIR],
      // Field names as in the proto; uint64 as strings (versions and ids can exceed 2^53);
      // bytes as Buffers; enums as their names; defaults filled in, as proto3 means.
      keepCase: true,
      longs: String,
      enums: String,
      bytes: Buffer,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { bkv: { v1: { Vault: grpc.ServiceClientConstructor } } };
    vault = pkg.bkv.v1.Vault;
  }
  return vault;
}

/** The google.rpc messages (Status, ErrorInfo, BadRequest, RetryInfo). */
export function rpcTypes(): protobuf.Root {
  if (!rpc) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => {
      // google/protobuf/*.proto are protobufjs's bundled common types.
      if (target.startsWith("google/protobuf/")) return target;
      return join(PROTO_DIR, target);
    };
    root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
    root.resolveAll();
    rpc = root;
  }
  return rpc;
}
