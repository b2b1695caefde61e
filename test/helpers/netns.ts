/**
 * Test hosts in Linux network namespaces, for root-only tests. Every name carries the
 * test process id and a random suffix so parallel runs never collide, and everything is
 * removed by `cleanup()`, which tests call in a `finally` or an `after` hook.
 *
 * Addresses come from 10.213.0.0/16, used by nothing else on our machines; traffic only
 * ever goes to addresses this helper assigned to interfaces it created.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** Runs a command, returning its stdout; throws with stderr on failure. */
export function sh(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

export interface TestHost {
  /** The namespace's name, for `ip netns exec`. */
  readonly namespace: string;
  /** The host's address on the veth link to the root namespace. */
  readonly address: string;
  /** The root namespace's address on the same link. */
  readonly peerAddress: string;
  /** Runs a command inside the namespace. */
  exec(command: string, args: string[], input?: string): string;
}

/** A veth link between two test hosts: each end's address on its own /30. */
export interface HostLink {
  readonly addressA: string;
  readonly addressB: string;
}

export interface TestNetwork {
  /** Creates a namespace linked by veth to the root namespace, on its own /30. */
  addHost(label: string): TestHost;
  /**
   * Links two hosts directly by veth on a new /30: a segment only they share. A host may
   * have several, and namespaces do not forward, so hosts on different segments have
   * no route to each other.
   */
  linkHosts(a: TestHost, b: TestHost): HostLink;
  /** Removes every namespace and link made by this network; safe to call twice. */
  cleanup(): void;
}

/** A set of test hosts, named after `label`, with unique names and a cleanup. */
export function createTestNetwork(label: string): TestNetwork {
  const tag = `${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
  const namespaces: string[] = [];
  const links: string[] = [];
  // A random /24 per network, a /30 per host within it.
  const subnet = 1 + (randomBytes(1)[0]! % 250);
  // Each host and each host-to-host link takes the next /30.
  let hosts = 0;

  return {
    addHost(hostLabel) {
      const index = hosts++;
      const namespace = `weft-${label}-${hostLabel}-${tag}`.slice(0, 60);
      const outside = `wt${tag}${index}a`.slice(0, 15);
      const inside = `wt${tag}${index}b`.slice(0, 15);
      const base = index * 4;
      const peerAddress = `10.213.${subnet}.${base + 1}`;
      const address = `10.213.${subnet}.${base + 2}`;
      sh("ip", ["netns", "add", namespace]);
      namespaces.push(namespace);
      sh("ip", ["link", "add", outside, "type", "veth", "peer", "name", inside]);
      links.push(outside);
      sh("ip", ["link", "set", inside, "netns", namespace]);
      sh("ip", ["addr", "add", `${peerAddress}/30`, "dev", outside]);
      sh("ip", ["link", "set", outside, "up"]);
      const exec = (command: string, args: string[], input?: string) =>
        sh("ip", ["netns", "exec", namespace, command, ...args], input);
      exec("ip", ["addr", "add", `${address}/30`, "dev", inside]);
      exec("ip", ["link", "set", inside, "up"]);
      exec("ip", ["link", "set", "lo", "up"]);
      return { namespace, address, peerAddress, exec };
    },
    linkHosts(a, b) {
      const index = hosts++;
      const endA = `wt${tag}${index}a`.slice(0, 15);
      const endB = `wt${tag}${index}b`.slice(0, 15);
      const addressA = `10.213.${subnet}.${index * 4 + 1}`;
      const addressB = `10.213.${subnet}.${index * 4 + 2}`;
      // Created in the root namespace, then both ends moved: it goes with either namespace.
      sh("ip", ["link", "add", endA, "type", "veth", "peer", "name", endB]);
      links.push(endA);
      sh("ip", ["link", "set", endA, "netns", a.namespace]);
      sh("ip", ["link", "set", endB, "netns", b.namespace]);
      a.exec("ip", ["addr", "add", `${addressA}/30`, "dev", endA]);
      a.exec("ip", ["link", "set", endA, "up"]);
      b.exec("ip", ["addr", "add", `${addressB}/30`, "dev", endB]);
      b.exec("ip", ["link", "set", endB, "up"]);
      return { addressA, addressB };
    },
    cleanup() {
      for (const link of links.splice(0)) {
        try {
          sh("ip", ["link", "del", link]);
        } catch {
          // already gone with its namespace
        }
      }
      for (const namespace of namespaces.splice(0)) {
        try {
          for (const pid of sh("ip", ["netns", "pids", namespace]).split("\n").filter(Boolean)) {
            sh("kill", ["-9", pid]);
          }
          sh("ip", ["netns", "del", namespace]);
        } catch {
          // best effort: report nothing, the next run uses new names
        }
      }
    },
  };
}
