/** The CLI's side of the control API: one HTTP request over the daemon's Unix socket. */
import { request } from "node:http";
import { join } from "node:path";

export const SOCKET_NAME = "weft.sock";

export function socketPathOf(stateDir: string): string {
  return join(stateDir, SOCKET_NAME);
}

/** Calls the daemon; resolves with the result, rejects with a one-line Error. */
export function callDaemon(
  socketPath: string,
  method: "GET" | "POST",
  path: string,
  body?: Record<string, unknown>,
): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: payload
          ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
          : {},
        timeout: 60_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            reject(
              new Error(`The daemon gave an answer that is not JSON (HTTP ${response.statusCode})`),
            );
            return;
          }
          if (response.statusCode === 200) resolve(parsed);
          else
            reject(
              new Error((parsed as { error?: string })?.error ?? `HTTP ${response.statusCode}`),
            );
        });
        response.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("The daemon did not answer within 60 s")));
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT" || error.code === "ECONNREFUSED") {
        reject(
          new Error(`weft is not running (no daemon at ${socketPath}; start it with 'weft up')`),
        );
      } else if (error.code === "EACCES") {
        reject(new Error(`Permission denied on ${socketPath}: run as the daemon's user (root?)`));
      } else reject(error);
    });
    if (payload) req.write(payload);
    req.end();
  });
}
