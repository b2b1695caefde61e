/**
 * A peer's transport keypairs (whitepaper §5.4.6, wireguard-go keypair.go): `current`
 * sends and receives; `previous` still receives what was in flight across a rekey;
 * `next` is a responder's new keypair, unconfirmed until the initiator first uses it.
 * So no packet is lost across a rekey on either side.
 *
 * Keys are wiped when a keypair leaves the set; JS cannot promise that no other copy
 * of the key material remains in memory.
 */
import { wipe } from "../crypto/index.ts";
import { REJECT_AFTER_MESSAGES } from "./constants.ts";
import type { SessionKeys } from "./handshake.ts";
import { createReplayFilter, type ReplayFilter } from "./replay.ts";

export interface Keypair {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  readonly createdMs: number;
  /**
   * Next counter to send. A JS number is exact to 2^53: at ten million packets a second
   * that lasts 28 years, far beyond REJECT_AFTER_TIME, so the 2^60 and 2^64 limits of the
   * spec are checked against it but can never be reached in practice.
   */
  sendCounter: number;
  readonly replay: ReplayFilter;
}

export interface Keypairs {
  current: Keypair | undefined;
  previous: Keypair | undefined;
  next: Keypair | undefined;
}

export function createKeypairs(): Keypairs {
  return { current: undefined, previous: undefined, next: undefined };
}

export function createKeypair(keys: SessionKeys, nowMs: number): Keypair {
  return {
    ...keys,
    createdMs: nowMs,
    sendCounter: 0,
    replay: createReplayFilter(REJECT_AFTER_MESSAGES),
  };
}

function wipeKeypair(keypair: Keypair | undefined): void {
  if (keypair) wipe(keypair.sendKey, keypair.receiveKey);
}

/**
 * Installs a new keypair. An initiator's is confirmed (the response proved the peer has
 * it) and becomes current at once; a responder's waits in `next`. Returns the keypairs
 * that were dropped, so the caller can free their indices.
 */
export function installKeypair(keypairs: Keypairs, keypair: Keypair): Keypair[] {
  const dropped: Keypair[] = [];
  const drop = (k: Keypair | undefined) => {
    if (k) {
      wipeKeypair(k);
      dropped.push(k);
    }
  };
  if (keypair.isInitiator) {
    if (keypairs.next) {
      // An unconfirmed responder keypair loses to ours; current stays as previous.
      drop(keypairs.previous);
      keypairs.previous = keypairs.next;
      keypairs.next = undefined;
      drop(keypairs.current);
    } else {
      drop(keypairs.previous);
      keypairs.previous = keypairs.current;
    }
    keypairs.current = keypair;
  } else {
    // As wireguard-go: previous goes too, since confirming `next` moves current there.
    drop(keypairs.next);
    drop(keypairs.previous);
    keypairs.previous = undefined;
    keypairs.next = keypair;
  }
  return dropped;
}

/**
 * Called when data arrives on `keypair`: if it is `next`, the initiator has confirmed it,
 * so it becomes current and the old current becomes previous. Returns the dropped keypair.
 */
export function confirmKeypair(keypairs: Keypairs, keypair: Keypair): Keypair | undefined {
  if (keypairs.next !== keypair) return undefined;
  const dropped = keypairs.previous;
  wipeKeypair(dropped);
  keypairs.previous = keypairs.current;
  keypairs.current = keypair;
  keypairs.next = undefined;
  return dropped;
}

/** Wipes and removes every keypair; returns them so their indices can be freed. */
export function clearKeypairs(keypairs: Keypairs): Keypair[] {
  const all = [keypairs.current, keypairs.previous, keypairs.next].filter(
    (k): k is Keypair => k !== undefined,
  );
  for (const k of all) wipeKeypair(k);
  keypairs.current = keypairs.previous = keypairs.next = undefined;
  return all;
}
