/** Smoke test of the root-only machinery: namespaces, veth links and cleanup, plus the tools CI installs. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createTestNetwork, sh } from "../helpers/netns.ts";
import { assertCanRun, rootOnly } from "../helpers/root.ts";

const TOOLS = ["ip", "ping", "wireguard-go", "wg"];

describe("test hosts in network namespaces", () => {
  test(
    "a namespace host answers ping over its veth link and is removed afterwards",
    rootOnly(...TOOLS),
    () => {
      assertCanRun(...TOOLS);
      const network = createTestNetwork("smoke");
      let namespace = "";
      try {
        const host = network.addHost("a");
        namespace = host.namespace;
        const out = sh("ping", ["-c", "1", "-W", "2", host.address]);
        assert.match(out, /1 received/);
        assert.match(
          host.exec("ip", ["-br", "addr"]),
          new RegExp(host.address.replaceAll(".", "\\.")),
        );
      } finally {
        network.cleanup();
      }
      assert.doesNotMatch(sh("ip", ["netns", "list"]), new RegExp(namespace));
    },
  );
});
