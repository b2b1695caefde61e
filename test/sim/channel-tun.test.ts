/** The channel Tun: the test plays the host on the other side of the device. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Tun } from "../../src/net/tun.ts";
import { ChannelTun } from "../../src/sim/index.ts";

const packet = (...bytes: number[]) => new Uint8Array(bytes);

describe("ChannelTun", () => {
  test("reports its name and MTU, with defaults", () => {
    const plain: Tun = new ChannelTun();
    assert.equal(plain.name, "sim0");
    assert.equal(plain.mtuBytes, 1420);
    const custom = new ChannelTun({ name: "weft0", mtuBytes: 1280 });
    assert.equal(custom.name, "weft0");
    assert.equal(custom.mtuBytes, 1280);
    assert.throws(() => new ChannelTun({ mtuBytes: 0 }), RangeError);
  });

  test("inject hands the device's handler a copy of the packet", () => {
    const tun = new ChannelTun();
    const got: Uint8Array[] = [];
    tun.onPacket((p) => {
      got.push(p);
      p.fill(0xff); // a device may decrypt or rewrite in place
    });
    const sent = packet(0x45, 1, 2);
    assert.equal(tun.inject(sent), true);
    assert.equal(tun.inject(sent), true);
    assert.deepEqual(sent, packet(0x45, 1, 2));
    assert.equal(got.length, 2);
    assert.notEqual(got[0], sent);
  });

  test("inject returns false without a handler, and refuses packets over the MTU", () => {
    const tun = new ChannelTun({ mtuBytes: 100 });
    assert.equal(tun.inject(packet(0x45)), false);
    tun.onPacket(() => {});
    assert.throws(() => tun.inject(new Uint8Array(101)), RangeError);
    assert.equal(tun.inject(new Uint8Array(100)), true);
  });

  test("write records copies in order and calls onWrite", () => {
    const tun = new ChannelTun();
    const heard: Uint8Array[] = [];
    tun.onWrite((p) => heard.push(p));
    const buffer = packet(0x60, 1);
    tun.write(buffer);
    buffer[1] = 2;
    tun.write(buffer);
    assert.deepEqual(tun.written, [packet(0x60, 1), packet(0x60, 2)]);
    assert.deepEqual(heard, tun.written);
    tun.onWrite(undefined);
    tun.write(packet(3));
    assert.equal(heard.length, 2);
    assert.equal(tun.written.length, 3);
  });

  test("nextWritten resolves with packets in order, whether written before or after", async () => {
    const tun = new ChannelTun();
    tun.write(packet(1));
    tun.write(packet(2));
    assert.deepEqual(await tun.nextWritten(), packet(1));
    assert.deepEqual(await tun.nextWritten(), packet(2));
    const third = tun.nextWritten(); // asked for before the device writes it
    const fourth = tun.nextWritten();
    tun.write(packet(3));
    tun.write(packet(4));
    assert.deepEqual(await third, packet(3));
    assert.deepEqual(await fourth, packet(4));
    assert.equal(tun.written.length, 4);
  });

  test("an echoing device: what goes in comes back out", async () => {
    const tun = new ChannelTun();
    tun.onPacket((p) => tun.write(p));
    tun.inject(packet(0x45, 0, 0, 20));
    assert.deepEqual(await tun.nextWritten(), packet(0x45, 0, 0, 20));
  });

  test("close is idempotent, rejects waiters and stops traffic both ways", async () => {
    const tun = new ChannelTun();
    let handled = 0;
    tun.onPacket(() => handled++);
    const waiting = tun.nextWritten();
    await tun.close();
    await tun.close();
    assert.equal(tun.closed, true);
    await assert.rejects(waiting, /closed/);
    await assert.rejects(tun.nextWritten(), /closed/);
    assert.equal(tun.inject(packet(0x45)), false);
    tun.write(packet(1));
    assert.equal(handled, 0);
    assert.equal(tun.written.length, 0);
  });
});
