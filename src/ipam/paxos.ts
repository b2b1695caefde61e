/**
 * Single-decree Paxos (Lamport, "Paxos Made Simple") for IPAM's one moment of consensus:
 * N peers started together from a static list agree on the set of peers that seeds the
 * ring. A pure state machine: messages in through `receive`, out through `send`, time
 * only through the `Clock`, randomness injected, so it runs unchanged in simulation.
 *
 * ```
 *  proposer                      acceptors (all participants)          learners (all)
 *  prepare(b)  ───────────────►  promise(b, accepted?) if b ≥ promised
 *  quorum of promises ◄────────  nack(b, promised) otherwise
 *  accept(b, v) ──────────────►  accepted(b, v) to everyone ─────────►  quorum for b: decide v
 *  v = value of the highest accepted ballot among the promises, else the promisers themselves
 * ```
 *
 * A node that has decided answers any protocol message with `decided(v)`, so peers that
 * lost messages learn the outcome. A proposer retries with a higher ballot after
 * `retryMs` plus random jitter until it learns a decision. Safety needs a quorum larger
 * than half the participants and acceptors that never forget their promises: across a
 * restart, `acceptorState()` must be saved and handed back (persistence is the caller's).
 */
import type { CancelTimer, Clock } from "../clock.ts";
import type { PeerKey } from "../mesh/gossip-state.ts";
import { PAXOS_JITTER_MS, PAXOS_RETRY_MS } from "./constants.ts";

/** A proposal number: rounds ordered first, proposers break ties. */
export interface Ballot {
  readonly round: number;
  readonly proposer: PeerKey;
}

/** The value agreed on: the seeds of the ring, sorted. */
export type SeedSet = readonly PeerKey[];

export interface AcceptedProposal {
  readonly ballot: Ballot;
  readonly value: SeedSet;
}

export type PaxosMessage =
  | { readonly type: "prepare"; readonly ballot: Ballot }
  | {
      readonly type: "promise";
      readonly ballot: Ballot;
      readonly accepted: AcceptedProposal | null;
    }
  | { readonly type: "nack"; readonly ballot: Ballot; readonly promised: Ballot }
  | { readonly type: "accept"; readonly ballot: Ballot; readonly value: SeedSet }
  | { readonly type: "accepted"; readonly ballot: Ballot; readonly value: SeedSet }
  | { readonly type: "decided"; readonly value: SeedSet };

/** What an acceptor must remember across restarts. */
export interface AcceptorState {
  readonly promised: Ballot | null;
  readonly accepted: AcceptedProposal | null;
}

export interface PaxosOptions {
  readonly me: PeerKey;
  /** Every participant, `me` included. */
  readonly participants: readonly PeerKey[];
  /** Promises and acceptances needed; defaults to a majority, must be more than half. */
  readonly quorum?: number;
  readonly clock: Clock;
  /** Delivers a message to a participant (may be lost; the protocol retries). */
  readonly send: (to: PeerKey, message: PaxosMessage) => void;
  /** Called once, when this node learns the decision. */
  readonly onDecide: (value: SeedSet) => void;
  /** A float in [0, 1) for retry jitter. */
  readonly random: () => number;
  readonly retryMs?: number;
  readonly jitterMs?: number;
  /** A promise and acceptance remembered from before a restart. */
  readonly acceptorState?: AcceptorState;
}

/** Orders ballots: negative when `a` comes before `b`. */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.round !== b.round) return a.round - b.round;
  return a.proposer < b.proposer ? -1 : a.proposer > b.proposer ? 1 : 0;
}

/**
 * One participant: acceptor and learner always, proposer once `propose()` is called.
 *
 * @example
 * ```ts
 * const node = new PaxosNode({ me, participants, clock, random, send, onDecide: seedRing });
 * node.propose(); // keeps trying until it learns a decision or stop() is called
 * ```
 */
export class PaxosNode {
  readonly me: PeerKey;
  readonly quorum: number;
  readonly #participants: ReadonlySet<PeerKey>;
  readonly #options: PaxosOptions;
  #promised: Ballot | null;
  #accepted: AcceptedProposal | null;
  #decided: SeedSet | undefined;
  #stopped = false;
  #highestRound = 0;
  /** The proposer's current ballot and the promises it gathered. */
  #ballot: Ballot | undefined;
  #promises = new Map<PeerKey, AcceptedProposal | null>();
  #acceptSent = false;
  #retry: CancelTimer | undefined;
  /** Learner: who accepted which ballot (key "round proposer"). */
  #acceptances = new Map<string, Set<PeerKey>>();

  constructor(options: PaxosOptions) {
    this.me = options.me;
    this.#participants = new Set(options.participants);
    if (!this.#participants.has(options.me)) {
      throw new RangeError(`Expected "participants" to include this node ${options.me}`);
    }
    const size = this.#participants.size;
    this.quorum = options.quorum ?? Math.floor(size / 2) + 1;
    if (!Number.isInteger(this.quorum) || this.quorum * 2 <= size || this.quorum > size) {
      throw new RangeError(
        `Expected "quorum" to be a majority of ${size} participants, got ${this.quorum}`,
      );
    }
    this.#options = options;
    this.#promised = options.acceptorState?.promised ?? null;
    this.#accepted = options.acceptorState?.accepted ?? null;
    this.#highestRound = Math.max(this.#promised?.round ?? 0, this.#accepted?.ballot.round ?? 0);
  }

  /** The decided seed set, once known. */
  decided(): SeedSet | undefined {
    return this.#decided;
  }

  acceptorState(): AcceptorState {
    return { promised: this.#promised, accepted: this.#accepted };
  }

  /** Starts proposing (again, with a higher ballot, until a decision is learned). */
  propose(): void {
    if (this.#decided !== undefined || this.#stopped || this.#ballot !== undefined) return;
    this.#startRound();
  }

  /** Stops proposing and cancels timers; the node still answers as an acceptor. */
  stop(): void {
    this.#stopped = true;
    this.#retry?.();
    this.#retry = undefined;
  }

  /** Handles one message from `from`; messages from non-participants are ignored. */
  receive(from: PeerKey, message: PaxosMessage): void {
    if (!this.#participants.has(from)) return;
    if ("ballot" in message)
      this.#highestRound = Math.max(this.#highestRound, message.ballot.round);
    if (this.#decided !== undefined) {
      if (message.type !== "decided" && from !== this.me) {
        this.#send(from, { type: "decided", value: this.#decided });
      }
      return;
    }
    switch (message.type) {
      case "prepare":
        this.#onPrepare(from, message.ballot);
        break;
      case "accept":
        this.#onAccept(from, message.ballot, message.value);
        break;
      case "promise":
        this.#onPromise(from, message.ballot, message.accepted);
        break;
      case "nack":
        this.#highestRound = Math.max(this.#highestRound, message.promised.round);
        break;
      case "accepted":
        this.#onAccepted(from, message.ballot, message.value);
        break;
      case "decided":
        this.#decide(message.value);
        break;
    }
  }

  #onPrepare(from: PeerKey, ballot: Ballot): void {
    if (this.#promised !== null && compareBallots(ballot, this.#promised) < 0) {
      this.#send(from, { type: "nack", ballot, promised: this.#promised });
      return;
    }
    this.#promised = ballot;
    this.#send(from, { type: "promise", ballot, accepted: this.#accepted });
  }

  #onAccept(from: PeerKey, ballot: Ballot, value: SeedSet): void {
    if (this.#promised !== null && compareBallots(ballot, this.#promised) < 0) {
      this.#send(from, { type: "nack", ballot, promised: this.#promised });
      return;
    }
    this.#promised = ballot;
    this.#accepted = { ballot, value };
    for (const peer of this.#participants) this.#send(peer, { type: "accepted", ballot, value });
  }

  #onPromise(from: PeerKey, ballot: Ballot, accepted: AcceptedProposal | null): void {
    const current = this.#ballot;
    if (current === undefined || compareBallots(ballot, current) !== 0 || this.#acceptSent) return;
    this.#promises.set(from, accepted);
    if (this.#promises.size < this.quorum) return;
    // Paxos' one rule for values: a value some acceptor may have accepted is proposed again.
    let highest: AcceptedProposal | null = null;
    for (const proposal of this.#promises.values()) {
      if (
        proposal !== null &&
        (highest === null || compareBallots(proposal.ballot, highest.ballot) > 0)
      ) {
        highest = proposal;
      }
    }
    const value = highest?.value ?? [...this.#promises.keys()].sort();
    this.#acceptSent = true;
    for (const peer of this.#participants)
      this.#send(peer, { type: "accept", ballot: current, value });
  }

  #onAccepted(from: PeerKey, ballot: Ballot, value: SeedSet): void {
    const key = `${ballot.round} ${ballot.proposer}`;
    let acceptors = this.#acceptances.get(key);
    if (acceptors === undefined) {
      acceptors = new Set();
      this.#acceptances.set(key, acceptors);
    }
    acceptors.add(from);
    if (acceptors.size >= this.quorum) this.#decide(value);
  }

  #decide(value: SeedSet): void {
    if (this.#decided !== undefined) return;
    this.#decided = value;
    this.#retry?.();
    this.#retry = undefined;
    this.#acceptances.clear();
    this.#options.onDecide(value);
  }

  #startRound(): void {
    if (this.#decided !== undefined || this.#stopped) return;
    this.#highestRound += 1;
    const ballot: Ballot = { round: this.#highestRound, proposer: this.me };
    this.#ballot = ballot;
    this.#promises = new Map();
    this.#acceptSent = false;
    const retryMs = this.#options.retryMs ?? PAXOS_RETRY_MS;
    const jitterMs = this.#options.jitterMs ?? PAXOS_JITTER_MS;
    this.#retry?.();
    this.#retry = this.#options.clock.setTimer(retryMs + this.#options.random() * jitterMs, () => {
      this.#retry = undefined;
      this.#startRound();
    });
    for (const peer of this.#participants) this.#send(peer, { type: "prepare", ballot });
  }

  /** Our own messages to ourselves are handled at once, so a quorum of 1 decides alone. */
  #send(to: PeerKey, message: PaxosMessage): void {
    if (to === this.me) this.receive(this.me, message);
    else this.#options.send(to, message);
  }
}
