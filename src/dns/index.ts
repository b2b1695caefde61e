/** @module DNS for the mesh: the replicated entries, the server, the forwarder. */
export { type AnswerConfig, answerQuery, type NameSource } from "./answer.ts";
export * from "./constants.ts";
export {
  DnsEntries,
  type DnsEntriesOptions,
  type DnsEntryInfo,
  type DnsRecord,
} from "./entries.ts";
export type { DnsChunk, DnsDelta, DnsEntry } from "./entry-wire.ts";
export { createForwarder, type Forwarder, type ForwarderOptions } from "./forwarder.ts";
export { isInZone, normaliseName } from "./names.ts";
export {
  type ChannelProvider,
  type DnsReplication,
  replicateDns,
} from "./replicate.ts";
export { parseResolvConf } from "./resolv-conf.ts";
export { addressOfReverseName, reverseNameOf, reverseZoneOf } from "./reverse-names.ts";
export {
  DnsServer,
  type DnsServerCounters,
  type DnsServerOptions,
  type Transport,
} from "./server.ts";
