/** The CLI's key commands, compatible with `wg genkey` / `wg pubkey`. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fromBase64 } from "../src/crypto/index.ts";
import { runCli } from "./helpers/cli.ts";
import { hasCommand, IN_CI } from "./helpers/root.ts";

// RFC 7748 §6.1: Alice's private and public keys, in WireGuard's base64.
const ALICE_PRIVATE = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
const ALICE_PUBLIC = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

describe("weft CLI", () => {
  test("genkey prints a clamped 32-byte key in base64", () => {
    const { status, stdout } = runCli(["genkey"]);
    assert.equal(status, 0);
    const key = fromBase64(stdout.trim());
    assert.equal(key.length, 32);
    assert.equal(key[0]! & 7, 0);
    assert.equal(key[31]! & 0xc0, 0x40);
  });

  test("pubkey derives the RFC 7748 public key", () => {
    const { status, stdout } = runCli(["pubkey"], `${ALICE_PRIVATE}\n`);
    assert.equal(status, 0);
    assert.equal(stdout.trim(), ALICE_PUBLIC);
  });

  test("genkey | pubkey agrees with wg pubkey", {
    skip: !hasCommand("wg") && !IN_CI && "wg not installed",
  }, () => {
    const privateKey = runCli(["genkey"]).stdout;
    const ours = runCli(["pubkey"], privateKey).stdout.trim();
    const theirs = spawnSync("wg", ["pubkey"], { input: privateKey, encoding: "utf8" });
    assert.equal(theirs.status, 0, theirs.stderr);
    assert.equal(ours, theirs.stdout.trim());
  });

  test("pubkey refuses a bad key with a clear message and exit code 1", () => {
    const notBase64 = runCli(["pubkey"], "not a key\n");
    assert.equal(notBase64.status, 1);
    assert.match(notBase64.stderr, /Invalid private key: not base64/);
    const short = runCli(["pubkey"], "AAAA\n");
    assert.equal(short.status, 1);
    assert.match(short.stderr, /Invalid private key: 3 bytes, expected 32/);
  });
});
