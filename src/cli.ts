/**
 * The `weft` command line (glue: may use the runtime through `runtimes/`).
 * Run as `node bin/weft.js`, `deno run -A mod.ts`, `bun run src/cli.ts`.
 */
import { Command, CommanderError } from "commander";
import { loadRuntime } from "../runtimes/index.ts";
import { fromBase64, KEY_BYTES, toBase64 } from "./crypto/index.ts";
import { VERSION } from "./version.ts";

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array);
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** Parses a base64 WireGuard key as `wg` does; throws an Error naming the problem. */
function parseKey(text: string, what: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = fromBase64(text.trim());
  } catch {
    throw new Error(`Invalid ${what}: not base64`);
  }
  if (key.length !== KEY_BYTES)
    throw new Error(`Invalid ${what}: ${key.length} bytes, expected ${KEY_BYTES}`);
  return key;
}

function buildProgram(): Command {
  const program = new Command()
    .name("weft")
    .description("A userspace mesh network on WireGuard tunnels")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command("up")
    .description("join or start a mesh and bring this peer up")
    .action(() => {
      throw new Error("'weft up' is not implemented yet: the tunnel and mesh land in later issues");
    });

  program
    .command("genkey")
    .description("print a new private key (base64, as 'wg genkey')")
    .action(async () => {
      const runtime = await loadRuntime();
      process.stdout.write(`${toBase64(runtime.crypto.generatePrivateKey())}\n`);
    });

  program
    .command("pubkey")
    .description("read a private key on stdin, print its public key (as 'wg pubkey')")
    .action(async () => {
      const runtime = await loadRuntime();
      const privateKey = parseKey(await readStdin(), "private key");
      process.stdout.write(`${toBase64(runtime.crypto.publicKey(privateKey))}\n`);
    });

  program
    .command("genpsk")
    .description("print a new preshared key (base64, as 'wg genpsk')")
    .action(async () => {
      const runtime = await loadRuntime();
      process.stdout.write(`${toBase64(runtime.crypto.randomBytes(KEY_BYTES))}\n`);
    });

  program
    .command("info")
    .description("print the runtime and which crypto implementation serves each algorithm")
    .action(async () => {
      const runtime = await loadRuntime();
      process.stdout.write(`weft ${VERSION} on ${runtime.name} ${runtime.version}\n`);
      for (const [algorithm, implementation] of Object.entries(runtime.crypto.implementations)) {
        process.stdout.write(`  ${algorithm}: ${implementation}\n`);
      }
    });

  return program;
}

/** Runs the CLI with `argv` in Node's convention (runtime, script, args...); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    process.stderr.write(`weft: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if ((import.meta as { main?: boolean }).main) process.exitCode = await main(process.argv);
