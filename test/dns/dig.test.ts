/**
 * The DNS server against a client no one here wrote: BIND's `dig` (Debian's dnsutils,
 * installed by .ci/run), on 127.0.0.1 and a random port, forwarding to a fake upstream
 * on another loopback port. Without dig the tests skip with a reason; under CI=true they
 * must run.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { loadRuntime } from "../../runtimes/index.ts";
import { hasCommand, IN_CI } from "../helpers/root.ts";
import {
  type FakeUpstream,
  LOOPBACK,
  MANY,
  startFakeUpstream,
  startServer,
  type TestServer,
  testEntries,
} from "./helpers.ts";

const runtime = await loadRuntime();
const HAVE_DIG = hasCommand("dig");
const skip = HAVE_DIG || IN_CI ? false : "dig is not installed (apt-get install dnsutils)";
if (skip) console.log(`skipping dig tests: ${skip}`);

let upstream: FakeUpstream;
let server: TestServer;

before(async () => {
  if (skip) return;
  upstream = await startFakeUpstream(runtime);
  server = await startServer(runtime, testEntries(runtime), upstream.port);
});
after(async () => {
  await Promise.all([server?.close(), upstream?.close()]);
});

/** Runs dig against the server; resolves with its output. */
function dig(...args: string[]): Promise<string> {
  assert.ok(HAVE_DIG, "dig must be installed under CI=true (see .ci/run)");
  const all = [`@${LOOPBACK}`, "-p", String(server.port), "+tries=1", "+time=3", ...args];
  return new Promise((resolve, reject) => {
    execFile("dig", all, { timeout: 15_000 }, (error, stdout) => {
      if (error) reject(new Error(`dig ${all.join(" ")}: ${error.message}\n${stdout}`));
      else resolve(stdout);
    });
  });
}

/** The data column of the answer section's records of `type`. */
function answers(output: string, type: string): string[] {
  const section = output.split(";; ANSWER SECTION:")[1]?.split("\n\n")[0] ?? "";
  return section
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[3] === type)
    .map((fields) => fields[4]!);
}

function status(output: string): string | undefined {
  return /status: ([A-Z]+)/.exec(output)?.[1];
}

describe(`dig against the DNS server on ${runtime.name}`, { skip }, () => {
  it("A and AAAA, mixed case", async () => {
    const a = await dig("WeB.weft.INTERNAL", "A");
    assert.equal(status(a), "NOERROR");
    assert.match(a, /flags: qr aa rd ra/);
    assert.deepEqual(answers(a, "A").sort(), ["10.40.0.1", "10.40.0.2", "10.40.0.3"]);
    assert.deepEqual(answers(await dig("web.weft.internal", "AAAA"), "AAAA"), ["fd00::1"]);
  });

  it("PTR through -x, IPv4 and IPv6", async () => {
    assert.deepEqual(answers(await dig("-x", "10.40.0.3"), "PTR"), ["web.weft.internal."]);
    assert.deepEqual(answers(await dig("-x", "fd00::1"), "PTR"), ["web.weft.internal."]);
  });

  it("NXDOMAIN with the SOA in authority", async () => {
    const out = await dig("nobody.weft.internal", "A");
    assert.equal(status(out), "NXDOMAIN");
    assert.match(out, /;; AUTHORITY SECTION:\nweft\.internal\.\s+5\s+IN\s+SOA\s/);
  });

  it("NODATA: NOERROR, no answers, the SOA in authority", async () => {
    const out = await dig("v4only.weft.internal", "AAAA");
    assert.equal(status(out), "NOERROR");
    assert.match(out, /ANSWER: 0,/);
    assert.match(out, /;; AUTHORITY SECTION:\nweft\.internal\.\s+5\s+IN\s+SOA\s/);
  });

  it(`${MANY} addresses: TC over small UDP, whole with +bufsize=4096, +tcp, and dig's own TCP retry`, async () => {
    const small = await dig("many.weft.internal", "A", "+bufsize=512", "+ignore");
    assert.match(small, /flags: qr aa tc rd ra/);
    assert.equal(answers(small, "A").length, 0);
    assert.equal(answers(await dig("many.weft.internal", "+bufsize=4096"), "A").length, MANY);
    assert.equal(answers(await dig("many.weft.internal", "+tcp"), "A").length, MANY);
    const retried = await dig("many.weft.internal", "+bufsize=512");
    assert.match(retried, /Truncated, retrying in TCP mode/);
    assert.equal(answers(retried, "A").length, MANY);
  });

  it("EDNS: the OPT record comes back; +noedns gets none", async () => {
    assert.match(
      await dig("web.weft.internal", "+bufsize=1232"),
      /; EDNS: version: 0, flags:; udp: 4096/,
    );
    assert.doesNotMatch(await dig("web.weft.internal", "+noedns"), /OPT PSEUDOSECTION/);
  });

  it("forwards other names to the upstream, over UDP and TCP", async () => {
    assert.deepEqual(answers(await dig("example.test", "A"), "A"), ["192.0.2.1"]);
    assert.deepEqual(answers(await dig("Example.TEST", "A", "+tcp"), "A"), ["192.0.2.1"]);
    assert.deepEqual(answers(await dig("big.test", "A"), "A"), ["198.51.100.7"]);
    assert.equal(status(await dig("slow.test", "A")), "SERVFAIL");
  });
});
