/** The Device's `onNoRoute` hook: Tun packets that no peer owns go up before they count as drops. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChannelTun } from "../../src/sim/channel-tun.ts";
import { SimNetwork } from "../../src/sim/network.ts";
import { createRandom } from "../../src/sim/random.ts";
import { VirtualClock } from "../../src/sim/virtual-clock.ts";
import { Device } from "../../src/tunnel/device.ts";
import { udpPacket } from "../helpers/packets.ts";
import { providers } from "../helpers/providers.ts";

const native = providers[1]![1];

function device(onNoRoute?: (packet: Uint8Array) => boolean) {
  const clock = new VirtualClock();
  const network = new SimNetwork({ clock, random: createRandom(1) });
  const tun = new ChannelTun();
  const dev = new Device({
    crypto: native,
    clock,
    conn: network.listen("198.18.0.1", 51820),
    tun,
    privateKey: new Uint8Array(32).fill(7),
    onNoRoute,
  });
  const peer = native.publicKey(new Uint8Array(32).fill(9));
  dev.addPeer({
    publicKey: peer,
    allowedIps: [{ address: new Uint8Array([10, 1, 0, 0]), prefixLength: 16 }],
  });
  return { dev, tun };
}

test("onNoRoute sees packets no peer owns; true takes them, false leaves them a drop", () => {
  const seen: Uint8Array[] = [];
  let answer = true;
  const { dev, tun } = device((packet) => {
    seen.push(packet.slice());
    return answer;
  });
  const group = udpPacket("10.1.0.5", "239.1.2.3", 1, 2, new Uint8Array([1]));
  tun.inject(group);
  assert.deepEqual(seen, [group]);
  assert.equal(dev.drops()["no-peer-for-destination"], undefined, "taken: not a drop");
  answer = false;
  tun.inject(udpPacket("10.1.0.5", "192.0.2.9", 1, 2, new Uint8Array([2])));
  assert.equal(seen.length, 2);
  assert.equal(dev.drops()["no-peer-for-destination"], 1, "refused: a drop");
  tun.inject(udpPacket("10.1.0.5", "10.1.0.9", 1, 2, new Uint8Array([3])));
  assert.equal(seen.length, 2, "a packet a peer owns never reaches the hook");
  dev.close();
});

test("without onNoRoute such packets are dropped as before", () => {
  const { dev, tun } = device();
  tun.inject(udpPacket("10.1.0.5", "239.1.2.3", 1, 2, new Uint8Array([1])));
  assert.equal(dev.drops()["no-peer-for-destination"], 1);
  dev.close();
});
