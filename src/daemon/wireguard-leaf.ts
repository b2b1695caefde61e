/**
 * Stock WireGuard clients as leaf members (`weft invite --wireguard NAME`): the
 * `wg-quick` configuration a phone app, `wg-quick` or `wireguard-go` uses to reach the
 * mesh through the inviting peer, and its QR code for the phone apps.
 */
import { renderUnicodeCompact } from "uqr";

export interface LeafConfig {
  /** The leaf's base64 private key (made by the inviter: the leaf gets it once, in this file). */
  readonly privateKey: string;
  /** The leaf's overlay address, from IPAM. */
  readonly address: string;
  /** The gateway's base64 public key. */
  readonly gatewayKey: string;
  /** Where the leaf reaches the gateway: "host:port" or "[v6]:port". */
  readonly endpoint: string;
  /** The mesh range (CIDR): all of it goes through the gateway. */
  readonly meshRange: string;
  /** The mesh DNS server (the gateway's overlay address) and search domain. */
  readonly dnsServer: string | undefined;
  readonly domain: string;
  readonly comment: string;
}

/** A `wg-quick` configuration file. */
export function renderWgQuick(config: LeafConfig): string {
  const dns = config.dnsServer === undefined ? [] : [`DNS = ${config.dnsServer}, ${config.domain}`];
  return [
    `# ${config.comment.replace(/[\r\n]+/g, " ")}`,
    "[Interface]",
    `PrivateKey = ${config.privateKey}`,
    `Address = ${config.address}/32`,
    ...dns,
    "",
    "[Peer]",
    `PublicKey = ${config.gatewayKey}`,
    `Endpoint = ${config.endpoint}`,
    `AllowedIPs = ${config.meshRange}`,
    // The leaf is usually behind NAT: keep its mapping open so the mesh can reach it.
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
}

/** The configuration as a QR code of Unicode half blocks, for a terminal. */
export function renderQr(text: string): string {
  return renderUnicodeCompact(text, { border: 2 });
}
