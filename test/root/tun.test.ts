/**
 * The kernel TUN adapter of the runtime running this file (koffi on Node, `Deno.dlopen`
 * on Deno, `bun:ffi` on Bun), in a child process on the same runtime
 * (`test/helpers/tun-child.ts`) inside a network namespace each test makes and deletes.
 * Root only; under CI=true it must run.
 *
 * Traffic only inside those namespaces: they hold `lo` and the children's TUN devices,
 * on 198.18.0.0/30 (the benchmarking range, RFC 2544) and fd57:7466::/64, and every
 * packet goes between the kernel of the namespace and the child's device.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { detectRuntime } from "../../runtimes/detect.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";
import type { TunChildConfig } from "../helpers/tun-child.ts";
import { type ChildEvent, createTunNamespace, type TunNamespace } from "../helpers/tun-client.ts";

const TOOLS = ["ip", "setpriv", "ping", "mount"];
const RUNTIME = detectRuntime();
const NAME = "weft0";
const ADDRESS4 = "198.18.0.1";
const PEER4 = "198.18.0.2";
const ADDRESS6 = "fd57:7466::1";
const PEER6 = "fd57:7466::2";
const OPTIONS = { name: NAME, mtu: 1420, addresses: [`${ADDRESS4}/30`, `${ADDRESS6}/64`] };
/** A timer of 50 ms may fire this late while a read is pending (the host may be busy). */
const TIMER_LATE_LIMIT_MS = 250;
/** close() waits for the pending poll to return and the kernel to remove the interface. */
const CLOSE_LIMIT_MS = 2000;
const NEEDS_ROOT = "needs root (CAP_NET_ADMIN)";

/** Runs `body` with a fresh namespace, deleted afterwards whatever happens. */
async function inNamespace(body: (namespace: TunNamespace) => Promise<void>): Promise<void> {
  assertCanRun(...TOOLS);
  const namespace = createTunNamespace();
  try {
    await body(namespace);
  } finally {
    namespace.cleanup();
  }
}

/** Asserts that the child ended by itself, with code 0 and nothing on stderr (no stack trace). */
async function assertCleanExit(child: ReturnType<TunNamespace["start"]>): Promise<void> {
  const { code, signal } = await child.exit();
  assert.equal(code, 0, `child exit code (signal ${signal}):\n${child.describe()}`);
  assert.deepEqual(child.stderr, [], "child wrote nothing to stderr");
}

describe(`kernel TUN device on ${RUNTIME}`, () => {
  test(
    "echo requests written into the device come back as the kernel's replies, IPv4 and IPv6",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const child = namespace.start({
          mode: "echo",
          options: OPTIONS,
          peer4: PEER4,
          peer6: PEER6,
        });
        const opened = await child.next("opened");
        assert.equal(opened.runtime, RUNTIME, "the child runs on the runtime under test");
        assert.equal(opened.name, NAME, "device name");
        assert.equal(opened.mtuBytes, 1420, "MTU");
        const echo = await child.next("echo");
        const results = echo.results as { family: number; sequence: number; problem: string }[];
        assert.equal(results.length, 6, `three echoes per family:\n${child.describe()}`);
        for (const { family, sequence, problem } of results) {
          assert.equal(problem, "", `IPv${family} echo ${sequence}`);
        }
        assert.ok(
          (echo.timerLateMs as number) < TIMER_LATE_LIMIT_MS,
          `timers fire on time while a read is pending (late by ${echo.timerLateMs} ms)`,
        );
        const closed = await child.next("closed");
        assert.ok((closed.closeMs as number) < CLOSE_LIMIT_MS, `close() took ${closed.closeMs} ms`);
        // It exits by itself: close() ended the pending wait and left nothing running.
        await assertCleanExit(child);
      });
    },
  );

  test(
    "the device is up with its addresses and MTU while open, and gone after close",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const child = namespace.start({ mode: "hold", options: { ...OPTIONS, mtu: 1380 } });
        await child.next("opened");
        const [link] = JSON.parse(namespace.exec("ip", ["-j", "address", "show", "dev", NAME])) as {
          mtu: number;
          flags: string[];
          addr_info: { local: string; prefixlen: number }[];
        }[];
        assert.ok(link, `ip shows ${NAME}`);
        assert.equal(link.mtu, 1380, "MTU set");
        assert.ok(link.flags.includes("UP"), `link is up: ${link.flags.join(",")}`);
        const addresses = link.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
        assert.ok(addresses.includes(`${ADDRESS4}/30`), `IPv4 address set: ${addresses.join(" ")}`);
        assert.ok(addresses.includes(`${ADDRESS6}/64`), `IPv6 address set: ${addresses.join(" ")}`);
        child.endInput();
        await child.next("closed");
        await assertCleanExit(child);
        assert.throws(
          () => namespace.exec("ip", ["link", "show", "dev", NAME]),
          /does not exist/,
          "the kernel removed the device when its file closed",
        );
      });
    },
  );

  test("ping from the namespace is answered through the device", rootOnly(...TOOLS), async () => {
    await inNamespace(async (namespace) => {
      const child = namespace.start({ mode: "respond", options: OPTIONS, peer4: PEER4 });
      await child.next("opened");
      // The kernel routes PEER4 into the device; the child answers each echo request.
      const output = namespace.exec("ping", [
        "-q",
        "-f",
        "-c",
        "500",
        "-s",
        "1372",
        "-w",
        "30",
        PEER4,
      ]);
      const summary = output.match(/(\d+) packets transmitted, (\d+) received.*time (\d+)ms/);
      assert.ok(summary, `ping printed a summary:\n${output}`);
      assert.equal(summary[2], "500", `every echo was answered:\n${output}`);
      console.log(
        `${RUNTIME}: 500 pings of 1400-byte packets through the device in ${summary[3]} ms`,
      );
      child.endInput();
      const closed = await child.next("closed");
      assert.ok(
        (closed.answered as number) >= 500,
        `the child answered ${closed.answered} requests`,
      );
      await assertCleanExit(child);
    });
  });

  test(
    "a name in use, by this process or another, is refused with that reason",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const holder = namespace.start({ mode: "hold", options: OPTIONS, openTwice: true });
        await holder.next("opened");
        const second = await holder.next("second");
        assert.equal(second.opened, false, "a second open in the same process fails");
        assert.equal(second.code, "TUN_NAME_IN_USE", `code: ${second.message}`);
        const other = namespace.start({ mode: "open", options: OPTIONS });
        const error = await other.next("error");
        assert.equal(error.code, "TUN_NAME_IN_USE", `code: ${error.message}`);
        assert.match(error.message as string, /^TUN name weft0 is in use by another process/);
        await assertCleanExit(other);
        holder.endInput();
        await assertCleanExit(holder);
      });
    },
  );

  test(
    "bad names and options are refused before anything is opened; %d names are numbered",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const tries = [
          { name: "weft-much-too-long" },
          { name: "weft/0" },
          { name: "lo" },
          { name: "weft0", addresses: ["10.0.0.1"] },
          { name: "weft0", mtu: 1000, addresses: ["fd00::1/64"] },
          { name: "weft%d" },
        ];
        const child = namespace.start({ mode: "try", options: {}, tries });
        await child.next("done");
        const outcomes = child.events.filter((e) => e.event === "tried");
        assert.equal(outcomes.length, tries.length, `one outcome per try:\n${child.describe()}`);
        const [tooLong, slash, taken, noPrefix, smallMtu, numbered] = outcomes as ChildEvent[];
        assert.equal(tooLong!.error, "RangeError", `too long: ${tooLong!.message}`);
        assert.match(
          tooLong!.message as string,
          /too long: 18 bytes, the kernel allows at most 15/,
        );
        assert.equal(slash!.error, "SyntaxError", `slash: ${slash!.message}`);
        assert.equal(taken!.code, "TUN_NAME_IN_USE", `"lo": ${taken!.message}`);
        assert.match(taken!.message as string, /not a TUN device/);
        assert.equal(noPrefix!.error, "SyntaxError", `no prefix length: ${noPrefix!.message}`);
        assert.equal(smallMtu!.error, "RangeError", `IPv6 with MTU 1000: ${smallMtu!.message}`);
        assert.equal(numbered!.opened, true, `weft%d opens: ${numbered!.message}`);
        assert.match(numbered!.name as string, /^weft\d+$/, "the kernel numbered the name");
        await assertCleanExit(child);
      });
    },
  );

  for (const setup of ["nobody", "root-without-net-admin"] as const) {
    test(
      `as ${setup}: the error says it needs root, and the process exits cleanly`,
      rootOnly(...TOOLS),
      async () => {
        await inNamespace(async (namespace) => {
          const child = namespace.start({ mode: "open", options: OPTIONS }, setup);
          const error = await child.next("error");
          assert.equal(error.code, "TUN_NEEDS_ROOT", `code: ${error.message}`);
          assert.ok(
            (error.message as string).startsWith(`opening TUN device ${NAME} ${NEEDS_ROOT}: `),
            `message: ${error.message}`,
          );
          await assertCleanExit(child);
        });
      },
    );
  }

  test(
    "without /dev/net/tun: the error says to load the tun module",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const config: TunChildConfig = { mode: "open", options: OPTIONS };
        const child = namespace.start(config, "without-dev-net-tun");
        const error = await child.next("error");
        assert.equal(error.code, "TUN_UNAVAILABLE", `code: ${error.message}`);
        assert.match(error.message as string, /^no \/dev\/net\/tun: load the tun module/);
        await assertCleanExit(child);
      });
    },
  );

  test(
    "without the ip command: the error says to install iproute2, and no device is left",
    rootOnly(...TOOLS),
    async () => {
      await inNamespace(async (namespace) => {
        const child = namespace.start({ mode: "open", options: OPTIONS }, "without-ip-command");
        const error = await child.next("error");
        assert.equal(error.code, "TUN_CONFIGURE_FAILED", `code: ${error.message}`);
        assert.match(error.message as string, /needs the ip command from iproute2/);
        await assertCleanExit(child);
        assert.throws(
          () => namespace.exec("ip", ["link", "show", "dev", NAME]),
          /does not exist/,
          "the half-configured device was closed",
        );
      });
    },
  );
});
