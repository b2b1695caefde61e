/**
 * The inviter's book of invitations: for each, the two hashes of its secret (the id that
 * finds it, the preshared key of its join handshake), its expiry, how many uses are left
 * and who used them, and whether it was revoked. The secret itself is only ever in the
 * token. The book is one blob in the store, saved atomically on every change before the
 * change is acted on: a use is spent on disk before the joiner hears yes, and because a
 * check-and-spend runs without yielding, two joins racing for the last use cannot both
 * win (tinc gets the same from renaming the invitation file).
 *
 * Spent, expired and revoked invitations are kept for a week past their expiry, so a
 * late joiner hears why it is refused; then they are purged.
 */
import { decode as cborDecode } from "cborg";
import { toHex } from "../crypto/bytes.ts";
import type { PeerKey } from "../mesh/gossip-state.ts";
import type { Store } from "../store.ts";
import { canonicalCbor, type Result } from "./records.ts";
import {
  encodeToken,
  INVITATION_ID_BYTES,
  type InviteEndpoint,
  invitationId,
  invitationPsk,
  SECRET_BYTES,
} from "./token.ts";

const BLOB = "invitations";
const FORMAT = 1;
export const DEFAULT_TTL_MS = 24 * 3_600_000;
export const MAX_TTL_MS = 365 * 24 * 3_600_000;
export const MAX_USES = 1000;
/** Invitations not yet purged, open or not. */
export const MAX_INVITATIONS = 1024;
export const KEEP_AFTER_EXPIRY_MS = 7 * 24 * 3_600_000;

export type InvitationState = "open" | "used" | "expired" | "revoked";
export type RefusalCode = "expired" | "used" | "revoked";

export interface Invitation {
  readonly id: Uint8Array;
  readonly psk: Uint8Array;
  readonly nickname: string | null;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly uses: number;
  /** Keys of the peers that joined with it, in order. */
  readonly usedBy: readonly PeerKey[];
  readonly revokedAt: number | null;
  /** The endpoints the token lists, "host:port", for `weft invite list`. */
  readonly endpoints: readonly string[];
}

export function invitationState(invitation: Invitation, now: number): InvitationState {
  if (invitation.revokedAt !== null) return "revoked";
  if (invitation.usedBy.length >= invitation.uses) return "used";
  if (now >= invitation.expiresAt) return "expired";
  return "open";
}

export interface CreateInvitation {
  readonly meshId: Uint8Array;
  readonly inviterKey: Uint8Array;
  readonly endpoints: readonly InviteEndpoint[];
  readonly ttlMs?: number;
  readonly uses?: number;
  readonly nickname?: string | null;
  readonly now: number;
}

export class InvitationBook {
  readonly #store: Store;
  readonly #randomBytes: (length: number) => Uint8Array;
  /** By hex id. */
  readonly #byId = new Map<string, Invitation>();

  private constructor(store: Store, randomBytes: (length: number) => Uint8Array) {
    this.#store = store;
    this.#randomBytes = randomBytes;
  }

  /** The book saved in `store` (empty if none). Never throws: an unreadable blob is an error. */
  static load(store: Store, randomBytes: (length: number) => Uint8Array): Result<InvitationBook> {
    const book = new InvitationBook(store, randomBytes);
    let bytes: Uint8Array | undefined;
    try {
      bytes = store.load(BLOB);
    } catch (error) {
      return { ok: false, error: `cannot read the invitations: ${(error as Error).message}` };
    }
    if (bytes === undefined) return { ok: true, value: book };
    const parsed = parseBook(bytes);
    if (!parsed.ok) return parsed;
    for (const invitation of parsed.value) book.#byId.set(toHex(invitation.id), invitation);
    return { ok: true, value: book };
  }

  /** A new invitation and its token. Throws a RangeError for bad options. */
  create(options: CreateInvitation): { token: string; invitation: Invitation } {
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    const uses = options.uses ?? 1;
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TTL_MS) {
      throw new RangeError("An invitation lasts from 1 ms to a year");
    }
    if (!Number.isSafeInteger(uses) || uses < 1 || uses > MAX_USES) {
      throw new RangeError(`An invitation has 1 to ${MAX_USES} uses`);
    }
    // Whole milliseconds, as saved (a simulated clock has fractions).
    const now = Math.floor(options.now);
    this.#purge(now);
    if (this.#byId.size >= MAX_INVITATIONS) {
      throw new RangeError(
        `${MAX_INVITATIONS} invitations are kept already: revoke some (weft invite revoke all)`,
      );
    }
    const secret = this.#randomBytes(SECRET_BYTES);
    const expiresAt = now + ttlMs;
    const nickname = options.nickname ?? null;
    const token = encodeToken({
      meshId: options.meshId,
      inviterKey: options.inviterKey,
      endpoints: options.endpoints,
      secret,
      expiresAt,
      nickname,
    });
    const invitation: Invitation = {
      id: invitationId(secret),
      psk: invitationPsk(secret),
      nickname,
      createdAt: now,
      expiresAt,
      uses,
      usedBy: [],
      revokedAt: null,
      endpoints: options.endpoints.map((e) =>
        e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`,
      ),
    };
    secret.fill(0);
    this.#byId.set(toHex(invitation.id), invitation);
    this.#save();
    return { token, invitation };
  }

  lookup(id: Uint8Array): Invitation | undefined {
    return id.length === INVITATION_ID_BYTES ? this.#byId.get(toHex(id)) : undefined;
  }

  list(): Invitation[] {
    return [...this.#byId.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * Revokes the open invitations whose hex id starts with `prefix` (4 characters at
   * least), or every open one for "all". Returns how many.
   */
  revoke(prefix: string, now: number): number {
    const wanted = prefix.toLowerCase();
    if (wanted !== "all" && !/^[0-9a-f]{4,32}$/.test(wanted)) return 0;
    let count = 0;
    for (const [hex, invitation] of this.#byId) {
      if (wanted !== "all" && !hex.startsWith(wanted)) continue;
      if (invitationState(invitation, now) !== "open") continue;
      this.#byId.set(hex, { ...invitation, revokedAt: Math.floor(now) });
      count++;
    }
    if (count > 0) this.#save();
    return count;
  }

  /** Whether `joiner` may use the invitation now: undefined if so, else why not. */
  check(id: Uint8Array, joiner: PeerKey, now: number): RefusalCode | "unknown" | undefined {
    const invitation = this.lookup(id);
    if (invitation === undefined) return "unknown";
    // A joiner whose yes was lost asks again: same answer.
    if (invitation.usedBy.includes(joiner)) return undefined;
    const state = invitationState(invitation, now);
    return state === "open" ? undefined : state;
  }

  /**
   * Spends one use on `joiner`, saved before it returns; idempotent for a joiner that
   * used it already. Returns what `check` would have refused with, or undefined.
   */
  consume(id: Uint8Array, joiner: PeerKey, now: number): RefusalCode | "unknown" | undefined {
    const refusal = this.check(id, joiner, now);
    if (refusal !== undefined) return refusal;
    const invitation = this.lookup(id)!;
    if (invitation.usedBy.includes(joiner)) return undefined;
    this.#byId.set(toHex(id), { ...invitation, usedBy: [...invitation.usedBy, joiner] });
    this.#save();
    return undefined;
  }

  /** Gives back the use `joiner` spent (its admission failed); returns whether it had one. */
  refund(id: Uint8Array, joiner: PeerKey): boolean {
    const invitation = this.lookup(id);
    if (!invitation?.usedBy.includes(joiner)) return false;
    this.#byId.set(toHex(id), {
      ...invitation,
      usedBy: invitation.usedBy.filter((key) => key !== joiner),
    });
    this.#save();
    return true;
  }

  #purge(now: number): void {
    let purged = false;
    for (const [hex, invitation] of this.#byId) {
      if (invitation.expiresAt + KEEP_AFTER_EXPIRY_MS > now) continue;
      this.#byId.delete(hex);
      purged = true;
    }
    if (purged) this.#save();
  }

  #save(): void {
    const list = this.list().map((i) => [
      i.id,
      i.psk,
      i.nickname,
      i.createdAt,
      i.expiresAt,
      i.uses,
      [...i.usedBy],
      i.revokedAt,
      [...i.endpoints],
    ]);
    this.#store.save(BLOB, canonicalCbor([FORMAT, list]));
  }
}

function parseBook(bytes: Uint8Array): Result<Invitation[]> {
  const bad = (why: string): Result<Invitation[]> => ({
    ok: false,
    error: `the saved invitations are unreadable (${why})`,
  });
  let value: unknown;
  try {
    value = cborDecode(bytes, { strict: true, rejectDuplicateMapKeys: true });
  } catch (error) {
    return bad((error as Error).message);
  }
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    value[0] !== FORMAT ||
    !Array.isArray(value[1])
  ) {
    return bad("not [format 1, invitations]");
  }
  const out: Invitation[] = [];
  for (const item of value[1] as unknown[]) {
    if (!Array.isArray(item) || item.length !== 9) return bad("an invitation has the wrong shape");
    const [id, psk, nickname, createdAt, expiresAt, uses, usedBy, revokedAt, endpoints] = item;
    const isTime = (t: unknown) => Number.isSafeInteger(t) && (t as number) >= 0;
    if (
      !(id instanceof Uint8Array && id.length === INVITATION_ID_BYTES) ||
      !(psk instanceof Uint8Array && psk.length === 32) ||
      !(nickname === null || typeof nickname === "string") ||
      !isTime(createdAt) ||
      !isTime(expiresAt) ||
      !(Number.isSafeInteger(uses) && uses >= 1) ||
      !(Array.isArray(usedBy) && usedBy.every((k) => typeof k === "string")) ||
      !(revokedAt === null || isTime(revokedAt)) ||
      !(Array.isArray(endpoints) && endpoints.every((e) => typeof e === "string"))
    ) {
      return bad("an invitation has a bad field");
    }
    out.push({
      id: Uint8Array.from(id),
      psk: Uint8Array.from(psk),
      nickname,
      createdAt,
      expiresAt,
      uses,
      usedBy,
      revokedAt,
      endpoints,
    });
  }
  return { ok: true, value: out };
}
