/**
 * IPAM state through the Store seam: the saved-state codec (round trip, every kind of
 * corruption refused with a reason), and the file store on a real temporary directory
 * (atomic replace, mode 0600, a restarted allocator keeps its addresses, a corrupt or
 * truncated file refused with a clear error).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { encode as encodeCbor } from "cbor-x";
import { createFileStore } from "../../runtimes/file-store.ts";
import {
  Allocator,
  decodeIpamState,
  encodeIpamState,
  IpamError,
  type IpamSnapshot,
} from "../../src/ipam/index.ts";
import { MemoryStore, VirtualClock } from "../../src/sim/index.ts";
import type { Store } from "../../src/store.ts";
import { StoreError } from "../../src/store.ts";
import { peerKey, range } from "./harness.ts";

const me = peerKey(1);
const other = peerKey(2);
const ringRange = range("10.40.0.0/24");
const directories: string[] = [];
after(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

function tempDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "weft-ipam-"));
  directories.push(directory);
  return directory;
}

/** A seeding allocator alone, on `store`. */
function seeder(store: Store, key = me): Allocator {
  return new Allocator({
    me: key,
    range: ringRange,
    clock: new VirtualClock(),
    bootstrap: { kind: "seed" },
    store,
    link: { reachablePeers: () => [], unicast: () => false, broadcast: () => {} },
  });
}

function snapshot(): IpamSnapshot {
  return {
    me,
    range: ringRange,
    ring: {
      range: ringRange,
      seeds: [me],
      entries: [
        { token: ringRange.start, end: ringRange.start + 128, owner: me, version: 3, free: 125 },
        { token: ringRange.start + 128, end: ringRange.end, owner: other, version: 1, free: 127 },
      ],
      removals: [{ dead: peerKey(3), heir: me, by: other }],
    },
    allocations: new Map([
      ["web", ringRange.start + 1],
      ["db", ringRange.start + 2],
    ]),
    acceptor: {
      promised: { round: 4, proposer: other },
      accepted: { ballot: { round: 3, proposer: me }, value: [me, other] },
    },
  };
}

function errorOf(bytes: Uint8Array): string {
  const decoded = decodeIpamState(bytes, { me, range: ringRange });
  assert.ok(!decoded.ok, "expected the state to be refused");
  return decoded.error;
}

describe("IPAM saved state", () => {
  test("round-trips ring, removal records, allocations and acceptor state", () => {
    const decoded = decodeIpamState(encodeIpamState(snapshot()), { me, range: ringRange });
    assert.ok(decoded.ok, decoded.ok ? "" : decoded.error);
    assert.deepEqual(decoded.snapshot, snapshot());
  });

  test("refuses 10 kinds of bad state, each with its reason", () => {
    const good = encodeIpamState(snapshot());
    const body = (fields: unknown[]) => {
      const cbor: Uint8Array = encodeCbor(fields);
      return new Uint8Array([...good.subarray(0, 5), ...cbor]);
    };
    const base = () => [me, ringRange.start, ringRange.end, [], [], null, null];
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(), /state marker/],
      ["other format", new TextEncoder().encode('{"json":1}'), /state marker/],
      [
        "newer version",
        Uint8Array.from([...good.subarray(0, 4), 9, ...good.subarray(5)]),
        /version is 9/,
      ],
      ["truncated", good.subarray(0, good.length - 7), /not valid CBOR|expected an array/],
      [
        "another peer's",
        encodeIpamState({ ...snapshot(), me: other, ring: null, allocations: new Map() }),
        /belongs to peer/,
      ],
      [
        "another range",
        body([me, ringRange.start, ringRange.end + 256, [], [], null, null]),
        /mesh range is 10\.40\.0\.0\/24/,
      ],
      [
        "an address the ring does not give us",
        body(Object.assign(base(), { 4: ["x", ringRange.start + 5] })),
        /does not give it/,
      ],
      [
        "overlapping ring",
        encodeIpamState({
          ...snapshot(),
          ring: {
            ...snapshot().ring!,
            entries: [
              snapshot().ring!.entries[0]!,
              { ...snapshot().ring!.entries[1]!, token: ringRange.start + 100 },
            ],
          },
        }),
        /ring is invalid|inconsistent/,
      ],
      ["a bad promise", body(Object.assign(base(), { 5: [0, me] })), /promise is malformed/],
      [
        "one address twice",
        encodeIpamState({
          ...snapshot(),
          allocations: new Map([
            ["a", ringRange.start + 1],
            ["b", ringRange.start + 1],
          ]),
        }),
        /appears twice/,
      ],
    ];
    for (const [name, bytes, reason] of cases) {
      assert.match(errorOf(bytes), reason, name);
    }
  });

  test("a MemoryStore restart keeps the allocator's addresses; corrupt bytes are refused with STATE_INVALID", async () => {
    const store = new MemoryStore();
    const first = seeder(store);
    const web = await first.allocate("web");
    const db = await first.allocate("db");
    first.close();
    const second = seeder(store);
    assert.deepEqual(
      [...second.allocations()],
      [
        ["web", web],
        ["db", db],
      ],
      "allocations restored",
    );
    assert.notEqual(await second.allocate("new"), web, "a new handle gets a new address");
    store.corrupt("ipam", new Uint8Array([0x57, 0x46, 0x54, 0x49, 1, 0xff]));
    assert.throws(
      () => seeder(store),
      (error: unknown) =>
        error instanceof IpamError &&
        error.code === "STATE_INVALID" &&
        /Cannot restore the saved IPAM state "ipam": its body is not valid CBOR/.test(
          error.message,
        ),
      "a corrupt state is refused with a clear error",
    );
  });
});

describe("file store", () => {
  test("saves atomically with mode 0600, loads back, and leaves no temporary files", () => {
    const directory = tempDirectory();
    const store = createFileStore(directory);
    assert.equal(store.load("ipam"), undefined, "nothing saved yet");
    store.save("ipam", new Uint8Array([1, 2, 3]));
    store.save("ipam", new Uint8Array([4, 5]));
    assert.deepEqual([...store.load("ipam")!], [4, 5], "the last save wins");
    assert.deepEqual(readdirSync(directory), ["ipam.state"], "no temporary file is left");
    if (globalThis.process?.platform !== "win32") {
      assert.equal(statSync(join(directory, "ipam.state")).mode & 0o777, 0o600, "mode 0600");
    }
    assert.throws(() => store.save("../x", new Uint8Array()), StoreError, "names are not paths");
  });

  test("refuses a file over the size limit before reading it", () => {
    const directory = tempDirectory();
    writeFileSync(join(directory, "ipam.state"), new Uint8Array(2048));
    const store = createFileStore(directory, { maxBlobBytes: 1024 });
    assert.throws(
      () => store.load("ipam"),
      (error: unknown) => error instanceof StoreError && error.code === "TOO_LARGE",
      "an oversized file is refused",
    );
  });

  test("an allocator restarted on a real file keeps its addresses; a truncated file is refused clearly", async () => {
    const directory = tempDirectory();
    const first = seeder(createFileStore(directory));
    const addresses = [await first.allocate("a"), await first.allocate("b")];
    first.close();
    const second = seeder(createFileStore(directory));
    assert.deepEqual([...second.allocations().values()], addresses, "addresses kept");
    assert.equal(await second.allocate("a"), addresses[0], "same handle, same address");
    second.close();

    const path = join(directory, "ipam.state");
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    assert.throws(
      () => seeder(createFileStore(directory)),
      (error: unknown) =>
        error instanceof IpamError &&
        error.code === "STATE_INVALID" &&
        /not valid CBOR \(truncated\?\)/.test(error.message),
      "a truncated file is refused with a clear error",
    );
    writeFileSync(path, new TextEncoder().encode("garbage"));
    assert.throws(
      () => seeder(createFileStore(directory)),
      /does not start with the IPAM state marker/,
      "a foreign file is refused with a clear error",
    );
  });
});
