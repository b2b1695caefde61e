/** What the control API answers for membership: plain JSON, shared by daemon and CLI. */

export interface MembersView {
  readonly meshId: string;
  readonly members: readonly {
    readonly publicKey: string;
    readonly nickname: string;
    readonly admittedBy: string | null;
    readonly admittedByNickname: string | null;
    readonly invitation: string | null;
    readonly at: string;
    readonly self: boolean;
  }[];
  readonly removed: readonly {
    readonly publicKey: string;
    readonly nickname: string | null;
    readonly removedBy: string;
    readonly removedByNickname: string | null;
    readonly at: string;
  }[];
}

export interface InvitationView {
  /** Hex of the invitation id (a hash of the token's secret). */
  readonly id: string;
  readonly state: "open" | "used" | "expired" | "revoked";
  readonly uses: number;
  readonly usesLeft: number;
  readonly nickname: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  /** Keys of the peers that joined with it. */
  readonly usedBy: readonly string[];
  readonly endpoints: readonly string[];
}

export interface InviteView extends InvitationView {
  readonly token: string;
}

export interface AttachView {
  readonly netns: string;
  readonly address: string;
  readonly name: string | null;
  /** The host end of the namespace's veth pair. */
  readonly hostInterface: string;
  /** False when everything was in place already. */
  readonly changed: boolean;
}

export interface WireguardInviteView {
  readonly name: string;
  readonly publicKey: string;
  readonly address: string;
  /** The wg-quick configuration file for the leaf (it holds the leaf's private key). */
  readonly config: string;
}
