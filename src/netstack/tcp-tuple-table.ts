/**
 * TcpStack's 4-tuple table, looked up once per received segment without building a
 * string: entries are filed under the two ports as one number, and the few entries that
 * share both ports (different peers) are told apart by comparing address bytes. The
 * text key ("remote|port|local|port") is made only for listings.
 */
import { formatIp } from "../net/ip.ts";

interface Entry<T> {
  readonly remote: Uint8Array;
  readonly local: Uint8Array;
  value: T;
}

/** The text form of a 4-tuple, as `TcpStack.connections()` reports it. */
export function tupleKey(
  remote: Uint8Array,
  remotePort: number,
  local: Uint8Array,
  localPort: number,
): string {
  return `${formatIp(remote)}|${remotePort}|${formatIp(local)}|${localPort}`;
}

export class TupleTable<T> {
  readonly #byPorts = new Map<number, Entry<T>[]>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(remote: Uint8Array, remotePort: number, local: Uint8Array, localPort: number): T | undefined {
    const entries = this.#byPorts.get(remotePort * 0x10000 + localPort);
    if (entries === undefined) return undefined;
    for (const entry of entries) {
      if (sameBytes(entry.remote, remote) && sameBytes(entry.local, local)) return entry.value;
    }
    return undefined;
  }

  has(remote: Uint8Array, remotePort: number, local: Uint8Array, localPort: number): boolean {
    return this.get(remote, remotePort, local, localPort) !== undefined;
  }

  set(
    remote: Uint8Array,
    remotePort: number,
    local: Uint8Array,
    localPort: number,
    value: T,
  ): void {
    const ports = remotePort * 0x10000 + localPort;
    let entries = this.#byPorts.get(ports);
    if (entries === undefined) {
      entries = [];
      this.#byPorts.set(ports, entries);
    }
    for (const entry of entries) {
      if (sameBytes(entry.remote, remote) && sameBytes(entry.local, local)) {
        entry.value = value;
        return;
      }
    }
    entries.push({ remote: remote.slice(), local: local.slice(), value });
    this.#size++;
  }

  delete(remote: Uint8Array, remotePort: number, local: Uint8Array, localPort: number): boolean {
    const ports = remotePort * 0x10000 + localPort;
    const entries = this.#byPorts.get(ports);
    if (entries === undefined) return false;
    const i = entries.findIndex((e) => sameBytes(e.remote, remote) && sameBytes(e.local, local));
    if (i < 0) return false;
    entries.splice(i, 1);
    if (entries.length === 0) this.#byPorts.delete(ports);
    this.#size--;
    return true;
  }

  values(): T[] {
    const out: T[] = [];
    for (const entries of this.#byPorts.values()) for (const e of entries) out.push(e.value);
    return out;
  }

  /** Every entry with its text key. */
  entries(): [string, T][] {
    const out: [string, T][] = [];
    for (const [ports, entries] of this.#byPorts) {
      const remotePort = Math.floor(ports / 0x10000);
      const localPort = ports % 0x10000;
      for (const e of entries) {
        out.push([tupleKey(e.remote, remotePort, e.local, localPort), e.value]);
      }
    }
    return out;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
