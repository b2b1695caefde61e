#!/usr/bin/env node
// The `weft` command on Node: TypeScript sources run through tsx, so no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli.ts");
process.exitCode = await main(process.argv);
