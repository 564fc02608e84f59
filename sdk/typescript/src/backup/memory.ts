// Keeps a long stream's memory flat. Each chunk of a backup passes through a few Buffers
// (the read, the cipher's output), whose memory lives outside V8's heap; V8 frees it only
// when it collects the small objects that own it, and it counts up to 64 MB of such memory
// before it collects on that account, which glibc's allocator then keeps: a 1 GiB backup
// grew the process by 40-60 MB that way. A young-generation collection every MiB frees
// the chunks' Buffers as they die (about 0.3 s per GiB here) and keeps the growth near
// 10 MB. The collector is V8's own `gc`, made reachable the way test runners do it.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

type Collect = (options?: { type?: "minor" | "major" }) => void;

let collect: Collect | null | undefined;

function collector(): Collect | null {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: Collect }).gc;
    if (typeof exposed === "function") {
      collect = exposed;
    } else {
      try {
        setFlagsFromString("--expose-gc");
        const fn = runInNewContext("gc") as unknown;
        collect = typeof fn === "function" ? (fn as Collect) : null;
      } catch {
        collect = null;
      }
    }
  }
  return collect;
}

/** Calls a young-generation collection after every `every` bytes reported to {@link MemoryKeeper.add}. */
export class MemoryKeeper {
  private since = 0;

  constructor(private readonly every: number) {}

  /** Counts `bytes` passed through; collects young garbage when `every` bytes have. */
  add(bytes: number): void {
    if (this.every <= 0) return;
    this.since += bytes;
    if (this.since >= this.every) {
      this.since = 0;
      collector()?.({ type: "minor" });
    }
  }
}

/** The default: a young-generation collection per MiB of backup. */
export const DEFAULT_COLLECT_EVERY = 1 << 20;
