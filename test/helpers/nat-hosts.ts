/**
 * Real hosts behind real NATs, in network namespaces (root only): a relay with a "public"
 * address and two hosts, each behind its own router namespace doing what a home router
 * does: masquerade (`iptables -t nat -A POSTROUTING -o wan -j MASQUERADE`) and drop
 * unsolicited connections to itself from the WAN.
 *
 *   hA (lan A) ── nA ─┐
 *                     ├─ bridge "internet" (in its own namespace) ── r
 *   hB (lan B) ── nB ─┘
 *
 * r cannot reach either LAN; hA and hB see each other only through their NATs.
 *
 * Why the routers drop unsolicited WAN input: without it, Linux conntrack makes an entry
 * for a peer's early punch packet that nobody has asked for yet; that entry holds the
 * public port, so this side's own packets to the peer are masqueraded from another port,
 * and the NAT acts as symmetric toward that peer (see the README's "Adverse networks").
 * Home routers drop such packets in their input firewall, which also stops the entry.
 *
 * Addresses come from 10.213.0.0/16, as in `netns.ts`; every namespace carries the
 * process id and a random tag, and `cleanup()` removes them all.
 */
import { randomBytes } from "node:crypto";
import { sh } from "./netns.ts";

export interface NatHost {
  readonly namespace: string;
  /** Its address on its segment (the LAN for hA and hB, the "internet" for r and routers). */
  readonly address: string;
  exec(command: string, args: string[], input?: string): string;
}

export interface NatWorld {
  readonly relay: NatHost;
  readonly routerA: NatHost;
  readonly routerB: NatHost;
  readonly hostA: NatHost;
  readonly hostB: NatHost;
  cleanup(): void;
}

export interface NatWorldOptions {
  /** Drop unsolicited WAN input on the routers, as home routers do (default true). */
  readonly inputFirewall?: boolean;
}

export function createNatWorld(label: string, options: NatWorldOptions = {}): NatWorld {
  const tag = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
  const subnet = 4 * (randomBytes(1)[0]! % 60);
  const net = (i: number) => `10.213.${subnet + i}`;
  const namespaces: string[] = [];
  const host = (role: string, address: string): NatHost => {
    const namespace = `weft-${label}-${role}-${tag}`.slice(0, 60);
    sh("ip", ["netns", "add", namespace]);
    namespaces.push(namespace);
    const exec = (command: string, args: string[], input?: string) =>
      sh("ip", ["netns", "exec", namespace, command, ...args], input);
    exec("ip", ["link", "set", "lo", "up"]);
    return { namespace, address, exec };
  };
  /** A veth from `a` (named `nameA` there) to `b`, created straight inside both. */
  const veth = (a: NatHost, nameA: string, b: NatHost, nameB: string) =>
    sh("ip", [
      "link",
      "add",
      nameA,
      "netns",
      a.namespace,
      "type",
      "veth",
      "peer",
      "name",
      nameB,
      "netns",
      b.namespace,
    ]);
  const up = (h: NatHost, device: string, cidr?: string) => {
    if (cidr) h.exec("ip", ["addr", "add", cidr, "dev", device]);
    h.exec("ip", ["link", "set", device, "up"]);
  };

  try {
    const internet = host("inet", "");
    internet.exec("ip", ["link", "add", "br0", "type", "bridge"]);
    up(internet, "br0");
    const relay = host("r", `${net(0)}.1`);
    const routerA = host("na", `${net(0)}.2`);
    const routerB = host("nb", `${net(0)}.3`);
    for (const [h, port] of [
      [relay, "pr"],
      [routerA, "pa"],
      [routerB, "pb"],
    ] as const) {
      veth(h, "wan", internet, port);
      internet.exec("ip", ["link", "set", port, "master", "br0"]);
      up(internet, port);
      up(h, "wan", `${h.address}/24`);
    }
    const hostA = host("ha", `${net(1)}.2`);
    const hostB = host("hb", `${net(2)}.2`);
    for (const [router, lanHost, lan] of [
      [routerA, hostA, net(1)],
      [routerB, hostB, net(2)],
    ] as const) {
      veth(router, "lan", lanHost, "eth0");
      up(router, "lan", `${lan}.1/24`);
      up(lanHost, "eth0", `${lanHost.address}/24`);
      lanHost.exec("ip", ["route", "add", "default", "via", `${lan}.1`]);
      router.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
      router.exec("iptables", ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]);
      if (options.inputFirewall ?? true)
        router.exec("iptables", [
          "-A",
          "INPUT",
          "-i",
          "wan",
          "-m",
          "conntrack",
          "--ctstate",
          "NEW,INVALID",
          "-j",
          "DROP",
        ]);
    }
    return { relay, routerA, routerB, hostA, hostB, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }

  function cleanup(): void {
    for (const namespace of namespaces.splice(0).reverse()) {
      try {
        for (const pid of sh("ip", ["netns", "pids", namespace]).split("\n").filter(Boolean))
          sh("kill", ["-9", pid]);
        sh("ip", ["netns", "del", namespace]);
      } catch {
        // best effort: the next run uses new names
      }
    }
  }
}
