/**
 * The membership CRDT: chains to the genesis, removals that win forever, pending records
 * re-checked as their authors arrive, convergence under any order and duplication, bad
 * bytes counted, forgeries never accepted, and the gossip and snapshot round trips.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { toBase64, toHex } from "../../src/crypto/bytes.ts";
import { Members } from "../../src/membership/members.ts";
import { type SignedRecord, signRecord } from "../../src/membership/records.ts";
import { GossipRejected } from "../../src/mesh/gossip-state.ts";
import { admission, admit, genesis, identity, MESH_ID, OTHER_MESH_ID, remove } from "./helpers.ts";

const [A, B, C, D, E, X] = [0, 1, 2, 3, 4, 9].map(identity) as [
  ReturnType<typeof identity>,
  ReturnType<typeof identity>,
  ReturnType<typeof identity>,
  ReturnType<typeof identity>,
  ReturnType<typeof identity>,
  ReturnType<typeof identity>,
];
const GENESIS = genesis(A);

function replica(options: { maxPending?: number } = {}): Members {
  return new Members({ meshId: MESH_ID, genesis: GENESIS, ...options });
}

/** A history with chains, a removal of an inviter (not retroactive) and a forgery or two. */
const VALID: SignedRecord[] = [
  admit(B, A),
  admit(C, B),
  admit(D, C),
  remove(B, C),
  admit(E, D),
  remove(E, A),
  admit(E, B), // E re-admitted: the removal still wins
];
const FORGED: SignedRecord[] = [
  admit(X, X), // signed by a non-member
  signRecord(MESH_ID, admission(X, A), X.signingSecret), // names A, signed by X's key
  admit(X, A, OTHER_MESH_ID), // A's signature, for another mesh
  signRecord(MESH_ID, admission(X, null), X.signingSecret), // a second genesis
];

function state(m: Members): string {
  return JSON.stringify({
    members: m.members().map((i) => ({ ...i, invitation: i.invitation && toHex(i.invitation) })),
    removed: m.removed(),
    digest: toHex(m.digest()),
    summary: [...m.summary().keys()].sort(),
  });
}

describe("Members", () => {
  it("follows chains to the genesis, and removals win forever without being retroactive", () => {
    const m = replica();
    for (const r of [...VALID, ...FORGED]) m.receive(r);
    const keys = m.members().map((i) => i.key);
    assert.deepEqual(keys, [A, C, D].map((i) => toBase64(i.key)).sort());
    assert.ok(m.isMember(C.key), "C, admitted by the removed B, stays a member");
    assert.ok(m.isMember(toBase64(D.key)), "D, admitted by C, is a member");
    assert.ok(!m.isMember(B.key) && m.isRemoved(B.key), "B is removed");
    assert.ok(!m.isMember(E.key), "E's re-admission does not undo its removal");
    assert.ok(!m.isMember(X.key), "no forgery admits X");
    assert.equal(m.members().find((i) => i.key === toBase64(A.key))?.admittedBy, null);
    const counters = m.counters;
    assert.equal(counters.badSignature, 1, "the other mesh's record fails its signature");
    assert.equal(counters.notGenesis, 1, "the second genesis is refused");
    assert.equal(m.pendingCount, 2, "records by non-members wait, unaccepted");
  });

  it("keeps records whose author is unknown pending, then accepts them in a chain", () => {
    const m = replica();
    assert.equal(m.receive(admit(D, C)), "pending");
    assert.equal(m.receive(admit(C, B)), "pending");
    assert.ok(!m.isMember(D.key), "D waits for C's admission");
    assert.equal(m.receive(admit(B, A)), "accepted");
    assert.ok(m.isMember(B.key) && m.isMember(C.key) && m.isMember(D.key), "the chain resolved");
    assert.equal(m.pendingCount, 0);
    assert.equal(m.receive(admit(B, A).bytes), "duplicate");
  });

  it("bounds pending records, evicting the oldest", () => {
    const m = replica({ maxPending: 2 });
    for (const r of [admit(B, X), admit(C, X), admit(D, X)]) m.receive(r);
    assert.equal(m.pendingCount, 2);
    assert.equal(m.counters.pendingEvicted, 1);
  });

  it("counts bad bytes and never throws on them", () => {
    const m = replica();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (bytes) => {
        assert.equal(m.receive(bytes), "rejected");
      }),
      { numRuns: 200 },
    );
    const valid = admit(B, A).bytes;
    for (let n = 0; n < valid.length; n++) m.receive(valid.slice(0, n));
    m.receive(new Uint8Array(100_000));
    assert.equal(m.counters.malformed, 200 + valid.length + 1);
    assert.throws(() => m.decode([valid, valid.slice(1)]), GossipRejected);
    assert.throws(() => m.decode(new Array(5000).fill(valid)), GossipRejected);
    assert.equal(m.counters.malformed, 200 + valid.length + 3);
    assert.equal(m.size, 1, "only the genesis is held");
  });

  it("replicas given the same records in any order, duplicated, converge", () => {
    const all = [...VALID, ...FORGED];
    const reference = replica();
    for (const r of all) reference.receive(r);
    fc.assert(
      fc.property(
        fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }),
        fc.array(fc.integer({ min: 0, max: all.length - 1 }), { maxLength: 10 }),
        fc.integer({ min: 1, max: 4 }),
        (order, dupes, batch) => {
          const m = replica();
          const stream = [...order, ...dupes.map((i) => all[i]!)];
          // Arrive in deltas of `batch` records through encode, CBOR-ready items and decode.
          for (let i = 0; i < stream.length; i += batch) {
            const items = m.encode({ records: stream.slice(i, i + batch) }, 1200);
            m.merge(m.decode(items), "peer");
          }
          assert.equal(state(m), state(reference));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("anti-entropy brings a new replica to the same state", () => {
    const a = replica();
    for (const r of VALID) a.receive(r);
    const b = replica();
    assert.notDeepEqual(a.digest(), b.digest());
    const delta = a.deltaFor(b.summary());
    assert.ok(delta !== null, "a has something b lacks");
    const changed = b.merge(b.decode(a.encode(delta, 1200)), "a");
    assert.equal(changed?.records.length, VALID.length);
    assert.equal(state(b), state(a));
    assert.equal(a.deltaFor(b.summary()), null, "nothing left to send");
    assert.equal(b.merge(delta, "a"), null, "merging again changes nothing");
  });

  it("never accepts a forgery, and never undoes a removal, whatever else arrives", () => {
    const pool = [...VALID, ...FORGED, remove(D, B), admit(B, C), admit(B, D)];
    fc.assert(
      fc.property(fc.shuffledSubarray(pool), (records) => {
        const m = replica();
        let removed = new Set<string>();
        for (const r of records) {
          m.receive(r);
          const now = new Set(m.removed().map((i) => i.key));
          for (const key of removed) {
            assert.ok(now.has(key) && !m.isMember(key), "a removal stays");
          }
          removed = now;
          assert.ok(!m.isMember(X.key), "X is never a member");
        }
        for (const key of [...m.summary().keys()]) {
          assert.ok(
            !FORGED.some((f) => toBase64(f.hash) === key),
            "no forged record is in the valid set",
          );
        }
      }),
      { numRuns: 200 },
    );
  });

  it("snapshots and restores the same state", () => {
    const a = replica();
    for (const r of [...VALID, ...FORGED]) a.receive(r);
    const restored = Members.restore(a.snapshot());
    assert.ok(restored.ok, `restores: ${restored.ok ? "" : restored.error}`);
    assert.equal(state(restored.value), state(a));
    const bad = Members.restore(new Uint8Array([1, 2, 3]));
    assert.ok(!bad.ok, "garbage is not a snapshot");
  });

  it("refuses a genesis that is not a self-signed self-admission", () => {
    assert.throws(() => new Members({ meshId: MESH_ID, genesis: admit(B, A) }), RangeError);
    assert.throws(() => new Members({ meshId: OTHER_MESH_ID, genesis: GENESIS }), RangeError);
  });
});
