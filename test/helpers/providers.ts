/** The Crypto providers every crypto suite runs against: the noble reference and this runtime's native one. */

import { createNativeCrypto } from "../../runtimes/native-crypto.ts";
import { type Crypto, nobleCrypto } from "../../src/crypto/index.ts";

export const providers: ReadonlyArray<readonly [string, Crypto]> = [
  ["noble", nobleCrypto],
  ["native", createNativeCrypto()],
];
