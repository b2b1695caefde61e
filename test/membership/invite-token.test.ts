/**
 * Invite tokens (`token.ts`) and the inviter's invitation book (`invitations.ts`): what a
 * person pasting a token is told for every way it can be wrong, that nothing but the
 * untouched token is ever accepted, and that the book spends, expires, revokes and
 * restores invitations without ever holding a secret. Property tests are seeded.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { blake2s } from "@noble/hashes/blake2.js";
import fc from "fast-check";
import { toBase64, toHex } from "../../src/crypto/index.ts";
import {
  type Invitation,
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
  MAX_ENDPOINTS,
  MAX_TOKEN_CHARS,
  TOKEN_PREFIX,
} from "../../src/membership/token.ts";
import { createRandom, MemoryStore } from "../../src/sim/index.ts";
import type { Store } from "../../src/store.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const HOUR_MS = 3_600_000;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** An invite with random ids and keys (so no field is a run of small integers). */
function invite(seed = 1, overrides: Partial<Invite> = {}): Invite {
  const random = createRandom(seed);
  return {
    meshId: random.bytes(16),
    inviterKey: random.bytes(32),
    endpoints: [
      { host: "203.0.113.7", port: 51820 },
      { host: "2001:db8::7", port: 51820 },
      { host: "vpn.example.org", port: 443 },
    ],
    secret: random.bytes(32),
    expiresAt: NOW + 24 * HOUR_MS,
    nickname: "laptop",
    ...overrides,
  };
}

function errorOf(input: unknown): string {
  const result = decodeToken(input);
  assert.ok(!result.ok, `expected a refusal of ${String(input).slice(0, 50)}`);
  return result.error;
}

function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A token of any fields, with the check a correct encoder would give them. */
function tokenOf(fields: unknown[], secret: Uint8Array): string {
  const check = blake2s(canonicalCbor(fields), { key: secret, dkLen: 16 });
  return TOKEN_PREFIX + toBase64Url(canonicalCbor([...fields, check]));
}

/** Every way to replace one character of `text` at `at` by another base64url character. */
function substitutions(text: string, at: number): string[] {
  return [...BASE64URL]
    .filter((c) => c !== text[at])
    .map((c) => text.slice(0, at) + c + text.slice(at + 1));
}

describe("invite token: encoding", () => {
  test("round-trips every field, for names, IPv4 and IPv6 hosts, with and without a nickname", () => {
    for (const original of [
      invite(1),
      invite(2, { nickname: null }),
      invite(3, { endpoints: [{ host: "fd00::1", port: 1 }] }),
    ]) {
      const text = encodeToken(original);
      assert.ok(text.startsWith(TOKEN_PREFIX), `starts with ${TOKEN_PREFIX}`);
      assert.match(text.slice(TOKEN_PREFIX.length), /^[A-Za-z0-9_-]+$/, "base64url, no padding");
      const decoded = decodeToken(text);
      assert.ok(decoded.ok, `decodes: ${decoded.ok ? "" : decoded.error}`);
      assert.deepEqual(decoded.value, original);
      assert.equal(encodeToken(decoded.value), text, "encoding is deterministic");
    }
    const pasted = decodeToken(`\n  ${encodeToken(invite(4))}  \r\n`);
    assert.ok(pasted.ok, "surrounding whitespace from a paste is ignored");
  });

  test("property: any valid invite round-trips", () => {
    const host = fc.oneof(
      fc.ipV4(),
      fc.ipV6().filter((h) => !h.includes(".")),
      fc.domain().filter((d) => d.length <= 253),
    );
    const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?$/);
    const arbitraryInvite = fc.record({
      meshId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      inviterKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      endpoints: fc.array(
        fc.record({ host, port: fc.integer({ min: 1, max: 65535 }) }).map((e) => ({ ...e })),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      secret: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      nickname: fc.option(label, { nil: null }),
    });
    fc.assert(
      fc.property(
        arbitraryInvite.map((i) => ({ ...i })),
        (original) => {
          const decoded = decodeToken(encodeToken(original));
          assert.ok(decoded.ok, `decodes: ${decoded.ok ? "" : decoded.error}`);
          assert.deepEqual(decoded.value, original);
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  test("the endpoint list: 1 to 16 endpoints; more or none is refused at encode", () => {
    const many = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ host: `10.0.${i}.1`, port: 51820 }));
    assert.ok(decodeToken(encodeToken(invite(1, { endpoints: many(1) }))).ok, "one endpoint");
    assert.ok(
      decodeToken(encodeToken(invite(1, { endpoints: many(MAX_ENDPOINTS) }))).ok,
      "sixteen",
    );
    assert.throws(
      () => encodeToken(invite(1, { endpoints: many(MAX_ENDPOINTS + 1) })),
      /more than 16 endpoints/,
    );
    assert.throws(() => encodeToken(invite(1, { endpoints: [] })), /no endpoints/);
    // Names of 40 characters fit 16 times; names near the DNS limit do not, and encode says
    // so rather than print a token that decode would refuse.
    const named = (length: number) =>
      Array.from({ length: MAX_ENDPOINTS }, (_, i) => ({
        host: `${String(i).padStart(2, "0")}${"a".repeat(length - 14)}.example.com`,
        port: 65535,
      }));
    const text = encodeToken(invite(1, { endpoints: named(40), nickname: "x".repeat(63) }));
    assert.ok(text.length <= MAX_TOKEN_CHARS, `16 names of 40 characters fit (${text.length})`);
    assert.ok(decodeToken(text).ok, "and decode");
    assert.throws(
      () => encodeToken(invite(1, { endpoints: named(253) })),
      /^RangeError: Cannot make a token: too long$/,
    );
  });

  test("bad hosts, ports and fields are refused at encode with a RangeError that names them", () => {
    const badHosts = [
      "",
      "a b",
      "host/path",
      "user@host",
      "[fd00::1]",
      "héllo.example",
      "tab\there",
      "x".repeat(254),
    ];
    for (const host of badHosts) {
      assert.throws(
        () => encodeToken(invite(1, { endpoints: [{ host, port: 1 }] })),
        (error: Error) => error instanceof RangeError && /endpoint host/.test(error.message),
        `host ${JSON.stringify(host)} is refused`,
      );
    }
    for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
      assert.throws(
        () => encodeToken(invite(1, { endpoints: [{ host: "10.0.0.1", port }] })),
        /port is not 1 to 65535/,
        `port ${port} is refused`,
      );
    }
    assert.throws(
      () => encodeToken(invite(1, { meshId: new Uint8Array(15) })),
      /mesh id is not 16 bytes/,
    );
    assert.throws(
      () => encodeToken(invite(1, { inviterKey: new Uint8Array(31) })),
      /inviter key is not 32 bytes/,
    );
    assert.throws(
      () => encodeToken(invite(1, { secret: new Uint8Array(16) })),
      /secret is not 32 bytes/,
    );
    assert.throws(() => encodeToken(invite(1, { expiresAt: -1 })), /expiry is not a time/);
    assert.throws(() => encodeToken(invite(1, { expiresAt: 1.5 })), /expiry is not a time/);
    assert.throws(
      () => encodeToken(invite(1, { nickname: "-leading-dash" })),
      /nickname is not a DNS label/,
    );
    assert.throws(
      () => encodeToken(invite(1, { nickname: "x".repeat(64) })),
      /nickname is too long/,
    );
    for (const host of ["host_name.internal", "fd00::1", "a-b.example", "192.0.2.1"]) {
      assert.ok(
        decodeToken(encodeToken(invite(1, { endpoints: [{ host, port: 1 }] }))).ok,
        `${host} is fine`,
      );
    }
  });

  test("invitationId and invitationPsk: known answers (joiner and inviter must agree)", () => {
    // From Python's hashlib, an independent BLAKE2s: blake2s(bytes(range(32)),
    // digest_size=16, person=b"weftinid") and (digest_size=32, person=b"weftinpk").
    const secret = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.equal(toHex(invitationId(secret)), "22e2bafa10ffec970dba8a4a65907c0b");
    assert.equal(
      toHex(invitationPsk(secret)),
      "d658c697875552761deb5510c6081f724b342227ef032f7ee8b0f7798867abb9",
    );
  });

  test("invitationId and invitationPsk: deterministic, different from each other and from the secret", () => {
    const secret = invite(1).secret;
    const id = invitationId(secret);
    const psk = invitationPsk(secret);
    assert.equal(id.length, 16);
    assert.equal(psk.length, 32);
    assert.deepEqual(invitationId(secret.slice()), id, "the id is a function of the secret");
    assert.deepEqual(invitationPsk(secret.slice()), psk, "so is the psk");
    assert.notDeepEqual(
      Array.from(id),
      Array.from(psk.subarray(0, 16)),
      "the id does not reveal the psk",
    );
    assert.ok(!toHex(psk).includes(toHex(secret).slice(0, 16)), "the psk is not the secret");
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (a, b) => {
          fc.pre(toHex(a) !== toHex(b));
          assert.notEqual(
            toHex(invitationId(a)),
            toHex(invitationId(b)),
            "different secrets, different ids",
          );
          assert.notEqual(toHex(invitationPsk(a)), toHex(invitationPsk(b)), "and different psks");
        },
      ),
      { numRuns: 200, seed: 8 },
    );
  });
});

describe("invite token: what a person pasting it is told", () => {
  test("a changed character anywhere in the body is damaged or altered (every substitution)", () => {
    const text = encodeToken(invite(5));
    const seen = new Map<string, number>();
    for (let at = TOKEN_PREFIX.length; at < text.length; at++) {
      for (const edited of substitutions(text, at)) {
        const result = decodeToken(edited);
        assert.ok(!result.ok, `an edit at ${at} was accepted`);
        const kind = result.error.replace(/\(.*$/, "").trim();
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
        // A changed length field makes the rest look cut short: the one other answer.
        assert.match(
          result.error,
          /^(damaged or altered|truncated) \(/,
          `edit at ${at}: ${result.error}`,
        );
      }
    }
    assert.ok(
      (seen.get("damaged or altered") ?? 0) > 0.9 * [...seen.values()].reduce((a, b) => a + b),
      `mostly "damaged or altered": ${JSON.stringify([...seen])}`,
    );
  });

  test("a mistyped version character is damaged, not a reason to upgrade", () => {
    // The version is the second byte; the body's third character carries its low four bits.
    const text = encodeToken(invite(6));
    const at = TOKEN_PREFIX.length + 2;
    const versions = new Set<string>();
    for (const edited of substitutions(text, at)) {
      const error = errorOf(edited);
      versions.add(error);
      assert.doesNotMatch(error, /unsupported version/, `edit to ${edited[at]}: ${error}`);
    }
    assert.ok(
      [...versions].some((e) => e === "damaged or altered (its version)"),
      "the version slips are named",
    );
  });

  test("a later version is named as unsupported, with or without the fields of version 1", () => {
    const secret = invite(1).secret;
    const fields = (version: number) => [
      version,
      new Uint8Array(16),
      new Uint8Array(32),
      [["10.0.0.1", 1]],
      secret,
      NOW,
      null,
    ];
    assert.match(
      errorOf(tokenOf(fields(2), secret)),
      /^unsupported version 2 \(this weft reads version 1: upgrade it\)$/,
    );
    assert.match(
      errorOf(tokenOf([3, "a", "different", "shape"], secret)),
      /^unsupported version 3 /,
    );
    assert.match(errorOf(tokenOf(fields(0), secret)), /damaged or altered/);
    assert.match(errorOf(tokenOf(fields(-1), secret)), /damaged or altered/);
  });

  test("a token cut anywhere says truncated or damaged, and never throws", () => {
    const text = encodeToken(invite(7));
    for (let length = TOKEN_PREFIX.length; length < text.length; length++) {
      let result: ReturnType<typeof decodeToken> | undefined;
      assert.doesNotThrow(() => {
        result = decodeToken(text.slice(0, length));
      }, `cut at ${length}`);
      assert.ok(result && !result.ok, `cut at ${length} was accepted`);
      assert.match(result.error, /truncated|damaged/, `cut at ${length}: ${result.error}`);
    }
    for (const length of [1, 3, 5]) {
      assert.match(
        errorOf(text.slice(0, length)),
        /not a weft invite token/,
        "cut inside the prefix",
      );
    }
  });

  test("longer than 2048 characters is too long, before anything else is read", () => {
    const text = encodeToken(invite(8));
    const padded = text + "A".repeat(MAX_TOKEN_CHARS + 1 - text.length);
    assert.equal(padded.length, MAX_TOKEN_CHARS + 1);
    assert.match(errorOf(padded), /^too long \(2049 characters; a token has at most 2048\)$/);
    assert.doesNotMatch(
      errorOf(padded.slice(0, MAX_TOKEN_CHARS)),
      /too long/,
      "2048 is not too long",
    );
    assert.match(errorOf("x".repeat(10_000_000)), /too long/);
  });

  test("wrong prefixes, garbage and things that are not text each get a clear error", () => {
    const body = encodeToken(invite(9)).slice(TOKEN_PREFIX.length);
    for (const prefix of ["weft2-", "WEFT1-", "weft1", "wg1-", ""]) {
      assert.match(
        errorOf(prefix + body),
        /^not a weft invite token \(a token starts with "weft1-"\)$/,
        `prefix ${prefix}`,
      );
    }
    assert.match(errorOf(""), /not a weft invite token/);
    assert.match(errorOf("   "), /not a weft invite token/);
    assert.match(errorOf("[Interface]\nPrivateKey = abc"), /not a weft invite token/);
    assert.match(
      errorOf(`${TOKEN_PREFIX}${body.slice(0, 20)}\n${body.slice(20)}`),
      /characters a token never has \(was it wrapped or quoted\?\)/,
    );
    assert.match(errorOf(`${TOKEN_PREFIX}${body}=`), /characters a token never has/);
    assert.match(
      errorOf(`${TOKEN_PREFIX}${body.replace(/-/g, "+")}x+/`),
      /characters a token never has/,
    );
    assert.match(
      errorOf(`${TOKEN_PREFIX}${toBase64Url(canonicalCbor("hello"))}`),
      /damaged or altered \(not a token\)/,
    );
    assert.match(
      errorOf(`${TOKEN_PREFIX}${toBase64Url(canonicalCbor([1, 2, 3]))}`),
      /wrong number of fields/,
    );
    assert.match(errorOf(`${TOKEN_PREFIX}/////`), /characters a token never has/);
    for (const value of [undefined, null, 42, {}, [], new Uint8Array(8), Symbol("x")]) {
      assert.equal(errorOf(value), "not text", `${String(typeof value)} is not text`);
    }
  });

  test("property: decodeToken never throws on arbitrary text", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 2100 }),
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.stringMatching(/^[A-Za-z0-9_-]{0,700}$/).map((s) => TOKEN_PREFIX + s),
      fc.uint8Array({ maxLength: 1500 }).map((b) => TOKEN_PREFIX + toBase64Url(b)),
    );
    fc.assert(
      fc.property(text, (input) => {
        const result = decodeToken(input);
        assert.equal(typeof result.ok, "boolean");
        if (!result.ok) assert.ok(result.error.length > 0, "a refusal says why");
      }),
      { numRuns: 2000, seed: 9 },
    );
  });

  test("property: random edits of a valid token never throw and never decode; only the untouched one does", () => {
    const text = encodeToken(invite(10));
    const edit = fc.oneof(
      fc.record({
        kind: fc.constant("replace" as const),
        at: fc.nat(),
        c: fc.integer({ min: 0, max: 63 }),
      }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(),
        c: fc.integer({ min: 0, max: 63 }),
      }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), c: fc.constant(0) }),
      fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), c: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 6 }), (edits) => {
        let edited = text;
        for (const { kind, at, c } of edits) {
          const i = at % (edited.length + 1);
          if (kind === "replace") edited = edited.slice(0, i) + BASE64URL[c] + edited.slice(i + 1);
          if (kind === "insert") edited = edited.slice(0, i) + BASE64URL[c] + edited.slice(i);
          if (kind === "delete") edited = edited.slice(0, i) + edited.slice(i + 1);
          if (kind === "swap" && edited.length > 0) {
            const j = c % edited.length;
            const chars = [...edited];
            [chars[i % edited.length], chars[j]] = [chars[j]!, chars[i % edited.length]!];
            edited = chars.join("");
          }
        }
        const result = decodeToken(edited);
        assert.equal(
          result.ok,
          edited === text,
          `edited token ${result.ok ? "accepted" : "refused"}`,
        );
      }),
      { numRuns: 2000, seed: 10 },
    );
    assert.ok(decodeToken(text).ok, "the untouched token decodes");
  });
});

/** A seeded source of secrets that remembers what it handed out (the book must wipe them). */
function secrets(seed = 1) {
  const random = createRandom(seed);
  const given: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  return {
    given,
    copies,
    randomBytes(length: number): Uint8Array {
      const bytes = random.bytes(length);
      given.push(bytes);
      copies.push(bytes.slice());
      return bytes;
    },
  };
}

function newBook(store: Store = new MemoryStore(), source = secrets()) {
  const loaded = InvitationBook.load(store, source.randomBytes);
  assert.ok(loaded.ok, `the store loads: ${loaded.ok ? "" : loaded.error}`);
  return loaded.value;
}

const MESH = invite(1).meshId;
const KEY = invite(1).inviterKey;
const ENDPOINTS = [
  { host: "198.51.100.1", port: 51820 },
  { host: "2001:db8::1", port: 51821 },
];
const joiners = [1, 2, 3, 4].map((n) => toBase64(new Uint8Array(32).fill(n)));

function create(
  book: InvitationBook,
  more: { ttlMs?: number; uses?: number; nickname?: string | null; now?: number } = {},
) {
  return book.create({ meshId: MESH, inviterKey: KEY, endpoints: ENDPOINTS, now: NOW, ...more });
}

describe("InvitationBook", () => {
  test("create, lookup and list: the token and the record agree", () => {
    const book = newBook();
    const a = create(book, { nickname: "db1", uses: 2, ttlMs: HOUR_MS });
    const b = create(book, { now: NOW + 5 });
    const token = decodeToken(a.token);
    assert.ok(token.ok, "the book's token decodes");
    assert.deepEqual(token.value.meshId, MESH);
    assert.deepEqual(token.value.inviterKey, KEY);
    assert.deepEqual(token.value.endpoints, ENDPOINTS);
    assert.equal(token.value.nickname, "db1");
    assert.equal(token.value.expiresAt, NOW + HOUR_MS);
    assert.deepEqual(a.invitation.id, invitationId(token.value.secret), "found by the secret's id");
    assert.deepEqual(a.invitation.psk, invitationPsk(token.value.secret));
    assert.deepEqual(
      { ...a.invitation, id: undefined, psk: undefined },
      {
        id: undefined,
        psk: undefined,
        nickname: "db1",
        createdAt: NOW,
        expiresAt: NOW + HOUR_MS,
        uses: 2,
        usedBy: [],
        revokedAt: null,
        endpoints: ["198.51.100.1:51820", "[2001:db8::1]:51821"],
      },
    );
    assert.deepEqual(book.lookup(a.invitation.id), a.invitation);
    assert.deepEqual(book.lookup(b.invitation.id), b.invitation);
    assert.equal(book.lookup(new Uint8Array(16)), undefined, "an unknown id");
    assert.equal(book.lookup(a.invitation.id.subarray(0, 8)), undefined, "a short id");
    assert.deepEqual(book.list(), [a.invitation, b.invitation], "oldest first");
    assert.notDeepEqual(a.invitation.id, b.invitation.id, "every invitation has its own secret");
    assert.equal(invitationState(b.invitation, NOW), "open");
  });

  test("a single-use invitation: the second joiner hears used, the first again hears yes", () => {
    const book = newBook();
    const { invitation } = create(book);
    assert.equal(book.check(invitation.id, joiners[0]!, NOW), undefined, "open");
    assert.equal(book.consume(invitation.id, joiners[0]!, NOW), undefined, "spent");
    assert.equal(book.consume(invitation.id, joiners[1]!, NOW), "used", "a second joiner");
    assert.equal(book.check(invitation.id, joiners[1]!, NOW), "used");
    assert.equal(
      book.consume(invitation.id, joiners[0]!, NOW),
      undefined,
      "the same joiner: idempotent",
    );
    assert.equal(
      book.check(invitation.id, joiners[0]!, NOW + 2 * 24 * HOUR_MS),
      undefined,
      "even after expiry",
    );
    assert.deepEqual(
      book.lookup(invitation.id)!.usedBy,
      [joiners[0]],
      "one use, on the first joiner",
    );
    assert.equal(book.consume(new Uint8Array(16), joiners[0]!, NOW), "unknown");
  });

  test("three uses: three joiners, then used; each of them may come back", () => {
    const book = newBook();
    const { invitation } = create(book, { uses: 3 });
    assert.deepEqual(
      joiners.map((j) => book.consume(invitation.id, j, NOW)),
      [undefined, undefined, undefined, "used"],
    );
    assert.equal(invitationState(book.lookup(invitation.id)!, NOW), "used");
    for (const j of joiners.slice(0, 3))
      assert.equal(book.consume(invitation.id, j, NOW), undefined, "idempotent");
    assert.deepEqual(book.lookup(invitation.id)!.usedBy, joiners.slice(0, 3));
  });

  test("expiry is decided by the now it is given, to the millisecond", () => {
    const book = newBook();
    const { invitation } = create(book, { ttlMs: 60_000 });
    assert.equal(book.check(invitation.id, joiners[0]!, NOW + 59_999), undefined);
    assert.equal(book.check(invitation.id, joiners[0]!, NOW + 60_000), "expired");
    assert.equal(book.consume(invitation.id, joiners[0]!, NOW + 60_000), "expired");
    assert.deepEqual(book.lookup(invitation.id)!.usedBy, [], "nothing spent");
    assert.equal(
      book.consume(invitation.id, joiners[0]!, NOW + 59_999),
      undefined,
      "the clock decides, not the order",
    );
  });

  test("revoke by id prefix or all; a too-short or foreign prefix revokes nothing", () => {
    const book = newBook();
    const ids = [0, 1, 2, 3].map(() => create(book, { uses: 2 }).invitation.id);
    const hex = ids.map((id) => toHex(id));
    assert.equal(book.revoke(hex[0]!.slice(0, 3), NOW), 0, "3 characters are too few");
    assert.equal(book.revoke("", NOW), 0);
    assert.equal(book.revoke("zzzz", NOW), 0, "not hex");
    assert.equal(book.revoke(`${hex[0]!.slice(0, 4)}-`, NOW), 0, "not hex either");
    assert.ok(
      ids.every((id) => book.check(id, joiners[0]!, NOW) === undefined),
      "all still open",
    );

    assert.equal(book.revoke(hex[0]!.slice(0, 8).toUpperCase(), NOW + 1), 1, "a prefix, any case");
    assert.equal(book.consume(ids[0]!, joiners[0]!, NOW + 2), "revoked");
    assert.equal(book.lookup(ids[0]!)!.revokedAt, NOW + 1);
    assert.equal(book.revoke(hex[0]!, NOW + 2), 0, "already revoked");

    book.consume(ids[1]!, joiners[0]!, NOW);
    book.consume(ids[1]!, joiners[1]!, NOW);
    assert.equal(book.revoke("all", NOW + 3), 2, "all the open ones: not the used one");
    assert.deepEqual(
      ids.map((id) => invitationState(book.lookup(id)!, NOW + 4)),
      ["revoked", "used", "revoked", "revoked"],
    );
    assert.equal(book.revoke("ALL", NOW + 5), 0, "none left");
  });

  test("the state survives a load from the same store", () => {
    const store = new MemoryStore();
    const source = secrets(3);
    const book = newBook(store, source);
    const a = create(book, { uses: 2, nickname: "web" }).invitation;
    const b = create(book, { ttlMs: 1_000, now: NOW + 0.75 }).invitation; // a simulated clock has fractions
    const c = create(book).invitation;
    book.consume(a.id, joiners[0]!, NOW);
    book.revoke(toHex(c.id), NOW + 10);

    const restored = newBook(store, source);
    assert.deepEqual(restored.list(), book.list(), "every field of every invitation");
    assert.equal(
      restored.consume(a.id, joiners[0]!, NOW),
      undefined,
      "the first joiner again: yes",
    );
    assert.equal(restored.consume(a.id, joiners[1]!, NOW), undefined, "the second use");
    assert.equal(restored.consume(a.id, joiners[2]!, NOW), "used", "and no third");
    assert.equal(restored.check(b.id, joiners[0]!, NOW + 1_000), "expired");
    assert.equal(restored.check(c.id, joiners[0]!, NOW), "revoked");
    assert.deepEqual(
      newBook(store, source).list(),
      restored.list(),
      "what the restored book spent is saved too",
    );
  });

  test("a corrupt blob gives ok: false with a message, never a throw", () => {
    const store = new MemoryStore();
    const book = newBook(store);
    create(book, { uses: 3 });
    const good = store.load("invitations")!;
    const bad: Uint8Array[] = [
      new Uint8Array([0xff]),
      new Uint8Array(0),
      good.subarray(0, good.length - 1),
      canonicalCbor([2, []]),
      canonicalCbor([1, "x"]),
      canonicalCbor([1, [[1, 2, 3]]]),
      canonicalCbor({ format: 1 }),
    ];
    for (let cut = 1; cut < good.length; cut += 7) bad.push(good.subarray(0, cut));
    for (const bytes of bad) {
      store.corrupt("invitations", bytes);
      const loaded = InvitationBook.load(store, secrets().randomBytes);
      assert.ok(!loaded.ok, `${toHex(bytes).slice(0, 40)} is refused`);
      assert.match(loaded.error, /^the saved invitations are unreadable \(.+\)$/);
    }
    const failing: Store = {
      load: () => {
        throw new Error("EIO: disk on fire");
      },
      save: () => {},
    };
    const unreadable = InvitationBook.load(failing, secrets().randomBytes);
    assert.ok(!unreadable.ok, "a store that fails to read is an error, not a throw");
    assert.match(unreadable.error, /cannot read the invitations: EIO: disk on fire/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        store.corrupt("invitations", bytes);
        assert.equal(typeof InvitationBook.load(store, secrets().randomBytes).ok, "boolean");
      }),
      { numRuns: 500, seed: 11 },
    );
  });

  test("the secret is never stored, and the book wipes its copy", () => {
    const store = new MemoryStore();
    const source = secrets(4);
    const book = newBook(store, source);
    const made: { token: string; invitation: Invitation }[] = [];
    for (let i = 0; i < 5; i++) made.push(create(book, { uses: 2 }));
    book.consume(made[0]!.invitation.id, joiners[0]!, NOW);
    const saved = toHex(store.load("invitations")!);
    assert.equal(source.copies.length, 5, "one secret per invitation");
    for (const [i, secret] of source.copies.entries()) {
      const token = decodeToken(made[i]!.token);
      assert.ok(
        token.ok && toHex(token.value.secret) === toHex(secret),
        "the token holds the secret",
      );
      assert.ok(!saved.includes(toHex(secret)), `secret ${i} is not in the saved book`);
      assert.ok(!saved.includes(toHex(secret.subarray(8, 24))), `nor any long piece of it`);
      // The search works: what the book does keep is found.
      assert.ok(saved.includes(toHex(invitationPsk(secret))), `the psk of ${i} is saved`);
      assert.ok(saved.includes(toHex(invitationId(secret))), `the id of ${i} is saved`);
      assert.ok(
        source.given[i]!.every((b) => b === 0),
        `the book's copy of secret ${i} is zeroed`,
      );
    }
    assert.ok(
      !JSON.stringify(book.list(), (_k, v) => (v instanceof Uint8Array ? toHex(v) : v)).includes(
        toHex(source.copies[0]!),
      ),
      "nor in memory",
    );
  });
  test("keeps spent records a week past expiry, then purges; the book is bounded", () => {
    const book = newBook();
    const old = create(book, { ttlMs: 1000 }).invitation;
    create(book, { now: NOW + 1000 + KEEP_AFTER_EXPIRY_MS - 1 });
    assert.ok(book.lookup(old.id), "kept a week past expiry, so a refusal can say why");
    create(book, { now: NOW + 1000 + KEEP_AFTER_EXPIRY_MS });
    assert.equal(book.lookup(old.id), undefined, "then purged");
    for (let i = book.list().length; i < MAX_INVITATIONS; i++) create(book);
    assert.throws(() => create(book), /1024 invitations are kept already/);
  });
});
