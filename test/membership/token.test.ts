/** Invite tokens and the inviter's invitation book: encoding, every refusal, persistence. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blake2s } from "@noble/hashes/blake2.js";
import fc from "fast-check";
import { toBase64, toHex } from "../../src/crypto/index.ts";
import {
  DEFAULT_TTL_MS,
  InvitationBook,
  invitationState,
  KEEP_AFTER_EXPIRY_MS,
  MAX_INVITATIONS,
} from "../../src/membership/invitations.ts";
import { canonicalCbor } from "../../src/membership/records.ts";
import {
  decodeToken,
  encodeToken,
  type Invite,
  invitationId,
  invitationPsk,
  isIpLiteral,
  MAX_TOKEN_CHARS,
  TOKEN_PREFIX,
} from "../../src/membership/token.ts";
import { MemoryStore } from "../../src/sim/index.ts";

const NOW = Date.UTC(2026, 10, 28, 10, 0, 0);
const MESH = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const KEY = new Uint8Array(32).fill(9);

function invite(overrides: Partial<Invite> = {}): Invite {
  return {
    meshId: MESH,
    inviterKey: KEY,
    endpoints: [
      { host: "203.0.113.7", port: 51820 },
      { host: "fd00::1", port: 51821 },
      { host: "inviter.example.com", port: 4000 },
    ],
    secret: Uint8Array.from({ length: 32 }, (_, i) => 200 - i),
    expiresAt: NOW + DEFAULT_TTL_MS,
    nickname: "host-b",
    ...overrides,
  };
}

function errorOf(text: unknown): string {
  const result = decodeToken(text);
  assert.ok(!result.ok, `expected ${String(text).slice(0, 40)} to be refused`);
  return result.error;
}

/** A token of arbitrary fields with a correct check, as a tool other than ours could make. */
function handMade(fields: unknown[], secret: Uint8Array): string {
  const check = blake2s(canonicalCbor(fields), { key: secret, dkLen: 16 });
  const bytes = canonicalCbor([...fields, check]);
  return TOKEN_PREFIX + toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Replaces character `at` of `text` by another base64url character. */
function flip(text: string, at: number): string {
  const next = text[at] === "A" ? "B" : "A";
  return text.slice(0, at) + next + text.slice(at + 1);
}

describe("invite token", () => {
  test("round-trips every field and starts with weft1-", () => {
    const original = invite();
    const text = encodeToken(original);
    assert.ok(text.startsWith("weft1-"), `token starts with the prefix: ${text}`);
    assert.match(text.slice(TOKEN_PREFIX.length), /^[A-Za-z0-9_-]+$/);
    const decoded = decodeToken(`  ${text}\n`);
    assert.ok(decoded.ok, `decodes: ${decoded.ok ? "" : decoded.error}`);
    assert.deepEqual(decoded.value, original);
    const unnamed = decodeToken(encodeToken(invite({ nickname: null })));
    assert.ok(unnamed.ok && unnamed.value.nickname === null, "null nickname round-trips");
  });

  test("encodeToken refuses an invite that cannot be a token", () => {
    assert.throws(() => encodeToken(invite({ endpoints: [] })), /no endpoints/);
    assert.throws(() => encodeToken(invite({ meshId: new Uint8Array(3) })), /mesh id/);
    assert.throws(() => encodeToken(invite({ nickname: "no spaces" })), /nickname/);
    assert.throws(
      () => encodeToken(invite({ endpoints: [{ host: "a", port: 0 }] })),
      /port is not 1 to 65535/,
    );
    const many = Array.from({ length: 17 }, (_, i) => ({ host: `10.0.0.${i}`, port: 1 }));
    assert.throws(() => encodeToken(invite({ endpoints: many })), /more than 16 endpoints/);
  });

  test("16 endpoints of long names still fit under the length cap", () => {
    const endpoints = Array.from({ length: 16 }, (_, i) => ({
      host: `peer-${i}.eu-west-1.compute.example.com`,
      port: 51820,
    }));
    const text = encodeToken(invite({ endpoints }));
    assert.ok(text.length <= MAX_TOKEN_CHARS, `token is ${text.length} characters`);
    assert.ok(decodeToken(text).ok, "it decodes");
  });

  test("says what is wrong: not a token, bad characters, truncated, too long", () => {
    const text = encodeToken(invite());
    assert.match(errorOf(42), /not text/);
    assert.match(errorOf("hello"), /not a weft invite token/);
    assert.match(errorOf(""), /not a weft invite token/);
    assert.match(errorOf(`${text.slice(0, 30)} ${text.slice(30)}`), /characters a token never has/);
    assert.match(errorOf(`"${text}"`), /not a weft invite token/);
    assert.match(errorOf(`${text}==`), /characters a token never has/);
    assert.match(errorOf(text.slice(0, -20)), /truncated/);
    assert.match(errorOf(text.slice(0, TOKEN_PREFIX.length + 5)), /truncated/);
    assert.match(errorOf(`${TOKEN_PREFIX}A`), /truncated/);
    assert.match(errorOf(TOKEN_PREFIX), /damaged|truncated/);
    assert.match(errorOf(`${TOKEN_PREFIX}${"A".repeat(MAX_TOKEN_CHARS)}`), /too long/);
    assert.match(errorOf("x".repeat(1_000_000)), /too long \(1000000 characters/);
  });

  test("a flipped character anywhere in the body is caught, never accepted", () => {
    const text = encodeToken(invite());
    for (let at = TOKEN_PREFIX.length; at < text.length; at++) {
      const result = decodeToken(flip(text, at));
      assert.ok(!result.ok, `flip at ${at} was accepted`);
      assert.match(
        result.error,
        /damaged or altered|truncated|unsupported version|malformed/,
        `flip at ${at}: ${result.error}`,
      );
    }
    // In the middle (the secret or the check) it is the check that catches it.
    assert.match(errorOf(flip(text, text.length - 10)), /check does not match/);
  });

  test("refuses a later version by number, and malformed fields by name", () => {
    const secret = new Uint8Array(32).fill(5);
    const fields = (version: number, endpoints: unknown, nickname: unknown = null) => [
      version,
      MESH,
      KEY,
      endpoints,
      secret,
      NOW,
      nickname,
    ];
    assert.match(errorOf(handMade(fields(2, [["10.0.0.1", 1]]), secret)), /unsupported version 2 /);
    assert.match(errorOf(handMade([7, "future"], secret)), /unsupported version 7 /);
    assert.match(errorOf(handMade(fields(0, [["10.0.0.1", 1]]), secret)), /damaged or altered/);
    assert.match(errorOf(handMade(fields(1, []), secret)), /malformed: no endpoints/);
    assert.match(errorOf(handMade(fields(1, "10.0.0.1"), secret)), /malformed: endpoints/);
    assert.match(
      errorOf(handMade(fields(1, [["10.0.0.1", 70000]]), secret)),
      /malformed: an endpoint port/,
    );
    assert.match(
      errorOf(handMade(fields(1, [["a b", 1]]), secret)),
      /malformed: endpoint host "a b" has bad characters/,
    );
    assert.match(
      errorOf(handMade(fields(1, [["10.0.0.1", 1]], 5), secret)),
      /malformed: nickname is not text/,
    );
    const shortMesh = [1, MESH.slice(0, 8), KEY, [["10.0.0.1", 1]], secret, NOW, null];
    assert.match(errorOf(handMade(shortMesh, secret)), /malformed: mesh id is not 16 bytes/);
    assert.match(errorOf(handMade([1, 2, 3], secret)), /wrong number of fields/);
  });

  test("the id and the preshared key are distinct one-way hashes of the secret", () => {
    const secret = invite().secret;
    const id = invitationId(secret);
    const psk = invitationPsk(secret);
    assert.equal(id.length, 16);
    assert.equal(psk.length, 32);
    assert.notDeepEqual(id, psk.subarray(0, 16));
    assert.deepEqual(invitationId(secret.slice()), id);
    assert.notDeepEqual(invitationId(new Uint8Array(32)), id);
    assert.ok(isIpLiteral("10.1.2.3") && isIpLiteral("fd00::1"), "literals are literals");
    assert.ok(!isIpLiteral("inviter.example.com"), "a name is not a literal");
  });

  test("property: decodeToken never throws, whatever the text", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 3000 }),
          fc.string({ unit: "grapheme", maxLength: 200 }),
          fc.base64String({ maxLength: 600 }).map((s) => TOKEN_PREFIX + s.replace(/=/g, "")),
          fc.uint8Array({ maxLength: 500 }).map((b) => TOKEN_PREFIX + toBase64(b)),
        ),
        (text) => {
          const result = decodeToken(text);
          assert.equal(typeof result.ok, "boolean");
        },
      ),
      { numRuns: 500 },
    );
  });

  test("property: no edit of a token's body is ever accepted", () => {
    const text = encodeToken(invite());
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    fc.assert(
      fc.property(
        fc.integer({ min: TOKEN_PREFIX.length, max: text.length - 1 }),
        fc.integer({ min: 0, max: 63 }),
        fc.boolean(),
        (at, c, insert) => {
          const edited = insert
            ? text.slice(0, at) + alphabet[c] + text.slice(at)
            : text.slice(0, at) + alphabet[c] + text.slice(at + 1);
          if (edited === text) return;
          assert.ok(!decodeToken(edited).ok, `edit at ${at} accepted`);
        },
      ),
      { numRuns: 500 },
    );
  });
});

function newBook(store = new MemoryStore()) {
  let n = 0;
  const random = (length: number) => {
    const bytes = new Uint8Array(length);
    new DataView(bytes.buffer).setUint32(0, ++n);
    return bytes;
  };
  const loaded = InvitationBook.load(store, random);
  assert.ok(loaded.ok, "an empty store loads");
  return { book: loaded.value, store, random };
}

const ENDPOINTS = [{ host: "10.0.0.1", port: 51820 }];
const create = (book: InvitationBook, more: { ttlMs?: number; uses?: number; now?: number } = {}) =>
  book.create({ meshId: MESH, inviterKey: KEY, endpoints: ENDPOINTS, now: NOW, ...more });
const JOINER = toBase64(new Uint8Array(32).fill(1));
const OTHER = toBase64(new Uint8Array(32).fill(2));

describe("InvitationBook", () => {
  test("create defaults to one use for 24 hours and keeps no secret", () => {
    const { book, store } = newBook();
    const { token, invitation } = book.create({
      meshId: MESH,
      inviterKey: KEY,
      endpoints: ENDPOINTS,
      nickname: "web",
      now: NOW,
    });
    const decoded = decodeToken(token);
    assert.ok(decoded.ok, "the token decodes");
    assert.equal(decoded.value.expiresAt, NOW + 24 * 3_600_000);
    assert.equal(decoded.value.nickname, "web");
    assert.deepEqual(invitation.id, invitationId(decoded.value.secret));
    assert.deepEqual(invitation.psk, invitationPsk(decoded.value.secret));
    assert.equal(invitation.uses, 1);
    assert.equal(invitationState(invitation, NOW), "open");
    assert.equal(store.saves.get("invitations"), 1);
    const saved = toHex(store.load("invitations")!);
    assert.ok(!saved.includes(toHex(decoded.value.secret)), "the secret is not saved");
    assert.deepEqual(book.lookup(invitation.id), invitation);
    assert.equal(book.lookup(new Uint8Array(16)), undefined);
    assert.equal(book.lookup(new Uint8Array(3)), undefined);
    assert.throws(() => create(book, { uses: 0 }), RangeError);
    assert.throws(() => create(book, { ttlMs: -1 }), RangeError);
  });

  test("consume spends a use, saved before it returns, and is idempotent per joiner", () => {
    const { book, store } = newBook();
    const { invitation } = create(book);
    const before = store.saves.get("invitations");
    assert.equal(book.consume(invitation.id, JOINER, NOW + 1), undefined);
    assert.equal(store.saves.get("invitations"), before! + 1);
    assert.equal(book.consume(invitation.id, JOINER, NOW + 2), undefined, "same joiner again");
    assert.equal(store.saves.get("invitations"), before! + 1, "nothing new to save");
    assert.equal(book.consume(invitation.id, OTHER, NOW + 3), "used");
    assert.equal(book.consume(new Uint8Array(16), OTHER, NOW), "unknown");
    assert.deepEqual(book.lookup(invitation.id)!.usedBy, [JOINER]);
  });

  test("a multi-use invitation takes exactly its uses", () => {
    const { book } = newBook();
    const { invitation } = create(book, { uses: 3 });
    const keys = [1, 2, 3, 4].map((n) => toBase64(new Uint8Array(32).fill(n)));
    assert.deepEqual(
      keys.map((k) => book.consume(invitation.id, k, NOW)),
      [undefined, undefined, undefined, "used"],
    );
    assert.equal(invitationState(book.lookup(invitation.id)!, NOW), "used");
  });

  test("expired and revoked invitations are refused as such", () => {
    const { book } = newBook();
    const a = create(book, { ttlMs: 1000 }).invitation;
    const b = create(book).invitation;
    const c = create(book).invitation;
    assert.equal(book.consume(a.id, JOINER, NOW + 1000), "expired");
    assert.equal(book.revoke(toHex(b.id).slice(0, 6), NOW), 1);
    assert.equal(book.consume(b.id, JOINER, NOW), "revoked");
    assert.equal(book.revoke("zz", NOW), 0, "not an id prefix");
    assert.equal(book.revoke("all", NOW + 2000), 1, "only c was still open");
    assert.equal(book.consume(c.id, JOINER, NOW), "revoked");
    assert.equal(book.revoke(toHex(c.id), NOW), 0, "already revoked");
  });

  test("survives a restore from its store; a corrupt blob is an error", () => {
    const { book, store, random } = newBook();
    const { invitation } = create(book, { uses: 2 });
    create(book, { now: NOW + 0.25 }); // a simulated clock's fraction is saved whole
    book.consume(invitation.id, JOINER, NOW);
    book.revoke("all", NOW);
    const restored = InvitationBook.load(store, random);
    assert.ok(restored.ok, "restores");
    assert.deepEqual(restored.value.list(), book.list());
    assert.equal(restored.value.consume(invitation.id, JOINER, NOW), undefined, "still its");
    for (const bad of [
      new Uint8Array([0xff, 0x00]),
      canonicalCbor([1, [[1, 2]]]),
      canonicalCbor("x"),
    ]) {
      store.corrupt("invitations", bad);
      const loaded = InvitationBook.load(store, random);
      assert.ok(!loaded.ok, "a corrupt blob is refused");
      assert.match(loaded.error, /saved invitations are unreadable/);
    }
    const failing = {
      load: () => {
        throw new Error("EIO");
      },
      save: () => {},
    };
    const unreadable = InvitationBook.load(failing, random);
    assert.ok(!unreadable.ok && /EIO/.test(unreadable.error), "a failing store is an error");
  });

  test("keeps spent records a week past expiry, then purges; the book is bounded", () => {
    const { book } = newBook();
    const old = create(book, { ttlMs: 1000 }).invitation;
    create(book, { now: NOW + 1000 + KEEP_AFTER_EXPIRY_MS - 1 });
    assert.ok(book.lookup(old.id), "kept a week past expiry, so a refusal can say why");
    create(book, { now: NOW + 1000 + KEEP_AFTER_EXPIRY_MS });
    assert.equal(book.lookup(old.id), undefined, "then purged");
    for (let i = book.list().length; i < MAX_INVITATIONS; i++) create(book);
    assert.throws(() => create(book), /1024 invitations are kept already/);
  });
});
