/**
 * `--peer` and `weft connect` arguments: `PUBKEY@host:port`, or `host:port` for a peer
 * whose key this daemon already knows (it saved the key with the endpoint earlier).
 */
import { lookup } from "node:dns/promises";
import { fromBase64, KEY_BYTES, toBase64 } from "../crypto/index.ts";
import { parseEndpoint, parseIp } from "../net/ip.ts";
import type { Endpoint } from "../net/packet-conn.ts";

export interface PeerSpec {
  /** Base64 public key, when the argument named one. */
  readonly publicKey: string | undefined;
  readonly host: string;
  readonly port: number;
}

/** Parses a peer argument; throws an Error saying what is wrong with it. */
export function parsePeerSpec(text: string): PeerSpec {
  const at = text.lastIndexOf("@");
  let publicKey: string | undefined;
  if (at >= 0) {
    const keyText = text.slice(0, at);
    let key: Uint8Array;
    try {
      key = fromBase64(keyText);
    } catch {
      throw new Error(`Invalid peer "${text}": the public key is not base64`);
    }
    if (key.length !== KEY_BYTES) {
      throw new Error(`Invalid peer "${text}": the public key has ${key.length} bytes, not 32`);
    }
    publicKey = toBase64(key);
  }
  const endpoint = parseEndpoint(text.slice(at + 1));
  if (!endpoint) {
    throw new Error(`Invalid peer "${text}": expected PUBKEY@HOST:PORT or HOST:PORT`);
  }
  return { publicKey, host: endpoint.host, port: endpoint.port };
}

/** The endpoint of a spec, its host name resolved (an IP literal is returned as is). */
export async function resolveSpec(spec: PeerSpec): Promise<Endpoint> {
  if (parseIp(spec.host.replace(/%.*$/, "")) !== undefined) {
    return { address: spec.host, port: spec.port };
  }
  try {
    const { address } = await lookup(spec.host);
    return { address, port: spec.port };
  } catch (error) {
    throw new Error(`Cannot resolve peer host "${spec.host}": ${(error as Error).message}`);
  }
}
