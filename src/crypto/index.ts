/** @module The Crypto seam, the noble reference provider and WireGuard's KDF. */
export * from "./bytes.ts";
export * from "./crypto.ts";
export * from "./kdf.ts";
export { clampPrivateKey, nobleCrypto } from "./noble.ts";
