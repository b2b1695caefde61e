/**
 * Runs one `attachNamespace` or `detachNamespace` through the Runtime of the runtime
 * running it, for `test/root/attach.test.ts`, which starts it inside the namespace
 * standing in for the weft host (`ip netns exec HOST <runtime> attach-child.ts
 * '{"op":"attach","options":{...}}'`). Prints one JSON line, `{ "result": ... }` or
 * `{ "error": { "name", "code", "message" } }`, and exits 0 either way.
 */
import process from "node:process";
import { loadRuntime } from "../../runtimes/index.ts";
import {
  type AttachOptions,
  attachNamespace,
  type DetachOptions,
  detachNamespace,
} from "../../src/daemon/attach.ts";

export type AttachChildRequest =
  | { readonly op: "attach"; readonly options: AttachOptions }
  | { readonly op: "detach"; readonly options: DetachOptions };

const request = JSON.parse(process.argv[2] ?? "{}") as AttachChildRequest;
const runtime = await loadRuntime();
try {
  const result =
    request.op === "attach"
      ? await attachNamespace(runtime, request.options)
      : await detachNamespace(runtime, request.options);
  console.log(JSON.stringify({ result }));
} catch (error) {
  const { name, message } = error as Error;
  const code = (error as { code?: unknown }).code;
  console.log(JSON.stringify({ error: { name, code, message } }));
}
