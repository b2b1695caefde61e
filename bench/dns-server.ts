/**
 * A weft DNS server for bench/dns.ts, on this runtime (Node, Deno or Bun): the bench's
 * 100 names from one owner, UDP and TCP on 127.0.0.1, no forwarder. Prints
 * `ready PORT` once it listens and serves until its stdin closes.
 *
 *   node --import tsx bench/dns-server.ts NAMES_FILE
 *   deno run -A bench/dns-server.ts NAMES_FILE
 *   bun bench/dns-server.ts NAMES_FILE
 * NAMES_FILE holds "ADDRESS NAME" lines (the hosts file dnsmasq reads); `--no-cache`
 * turns the server's answer cache off, for before/after comparisons.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { loadRuntime } from "../runtimes/index.ts";
import { DnsEntries } from "../src/dns/entries.ts";
import { DnsServer } from "../src/dns/server.ts";

const LOOPBACK = "127.0.0.1";
const OWNER = `${"B".repeat(42)}A=`;

const path = process.argv[2];
if (path === undefined) throw new TypeError("Usage: dns-server.ts NAMES_FILE");
const runtime = await loadRuntime();
const entries = new DnsEntries({ self: OWNER, clock: runtime.clock });
for (const line of readFileSync(path, "utf8").split("\n")) {
  const [address, name] = line.trim().split(/\s+/);
  if (address && name) entries.add(name, address);
}
// UDP and TCP on one port, as a resolver has; retry if TCP's is taken.
let server: DnsServer | undefined;
for (let attempt = 0; server === undefined; attempt++) {
  const udp = await runtime.listenUdp({ address: LOOPBACK });
  try {
    const tcp = await runtime.listenTcp({ address: LOOPBACK, port: udp.localPort });
    server = new DnsServer({
      udp,
      tcp,
      names: entries,
      clock: runtime.clock,
      cacheAnswers: !process.argv.includes("--no-cache"),
    });
    console.log(`ready ${udp.localPort}`);
  } catch (error) {
    await udp.close();
    if (attempt >= 5) throw error;
  }
}
// Serve until the bench closes our stdin (then exit, so --cpu-prof writes its profile).
process.stdin.on("data", () => {});
process.stdin.on("end", async () => {
  const counters = server.counters();
  await server.close();
  console.log(`counters ${JSON.stringify(counters)}`);
  process.exit(0);
});
