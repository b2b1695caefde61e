/** `weft up --multicast on|off --multicast-rate N` and the status line (pure, no daemon). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildConfig } from "../../src/daemon/config.ts";
import { formatMulticast, withoutAddress } from "../../src/daemon/multicast-glue.ts";

const base = { name: "h1", stateDir: "/nonexistent" };

test("multicast is on at 100 packets a second unless told otherwise", () => {
  assert.deepEqual(buildConfig(base, {}).multicast, { enabled: true, packetsPerSecond: 100 });
  assert.deepEqual(buildConfig({ ...base, multicast: "off" }, {}).multicast, {
    enabled: false,
    packetsPerSecond: 100,
  });
  assert.equal(buildConfig({ ...base, multicastRate: "5" }, {}).multicast.packetsPerSecond, 5);
});

test("bad --multicast and --multicast-rate values name the option", () => {
  assert.throws(
    () => buildConfig({ ...base, multicast: "yes" }, {}),
    /--multicast "yes": on or off/,
  );
  assert.throws(() => buildConfig({ ...base, multicastRate: "0" }, {}), /--multicast-rate "0"/);
  assert.throws(() => buildConfig({ ...base, multicastRate: "1.5" }, {}), /--multicast-rate/);
});

test("the status line says on or off, the rate and the counters", () => {
  const counters = { sent: 3, delivered: 4, ignored: { igmp: 1, ipv6: 0 } };
  assert.equal(
    formatMulticast({ enabled: true, packetsPerSecond: 100, burst: 200, ...counters, dropped: {} }),
    "  multicast on (100/s, burst 200): sent 3, delivered 4",
  );
  assert.equal(
    formatMulticast({
      enabled: true,
      packetsPerSecond: 100,
      burst: 200,
      ...counters,
      dropped: { duplicate: 2, "spoofed-source": 1 },
    }),
    "  multicast on (100/s, burst 200): sent 3, delivered 4, dropped duplicate 2, spoofed-source 1",
  );
  assert.equal(
    formatMulticast({
      enabled: false,
      packetsPerSecond: 100,
      burst: 200,
      ...counters,
      dropped: {},
    }),
    "  multicast off",
  );
});

test("withoutAddress cuts the broadcast address out of the range that holds it", () => {
  const ranges = [
    { start: 0, end: 10 },
    { start: 10, end: 16 },
  ];
  assert.deepEqual(withoutAddress(ranges, 15), [
    { start: 0, end: 10 },
    { start: 10, end: 15 },
  ]);
  assert.deepEqual(withoutAddress(ranges, 12), [
    { start: 0, end: 10 },
    { start: 10, end: 12 },
    { start: 13, end: 16 },
  ]);
  assert.deepEqual(withoutAddress([{ start: 15, end: 16 }], 15), []);
  assert.deepEqual(withoutAddress(ranges, 99), ranges);
});
