/**
 * The control API: HTTP with JSON bodies on a Unix socket in the state directory, mode
 * 0600, so only the daemon's owner can drive it (the CLI is its only client). Every
 * answer is JSON: the result with 200, or `{ "error": "one line" }` with 400 for a bad
 * request or a refused command, 404 for an unknown route.
 */
import { chmodSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { formatAddress } from "../ipam/address.ts";
import type { Daemon } from "./daemon.ts";

const MAX_BODY_BYTES = 64 * 1024;

type Handler = (daemon: Daemon, body: Record<string, unknown>, query: URLSearchParams) => unknown;

const string = (body: Record<string, unknown>, field: string): string => {
  const value = body[field];
  if (typeof value !== "string" || value.length === 0) throw new Error(`"${field}" is required`);
  return value;
};
const optionalString = (body: Record<string, unknown>, field: string): string | undefined =>
  body[field] === undefined ? undefined : string(body, field);

const positiveNumber = (body: Record<string, unknown>, field: string): number => {
  const value = body[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new Error(`"${field}" must be a positive integer`);
  }
  return value;
};
const stringList = (body: Record<string, unknown>, field: string): string[] => {
  const value = body[field] ?? [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`"${field}" must be a list of strings`);
  }
  return value;
};

/** Routes by `METHOD /path`. */
const ROUTES: Record<string, Handler> = {
  "GET /v1/status": (d) => d.status(),
  "GET /v1/peers": (d) => d.status().peers,
  "POST /v1/connect": (d, body) => d.connect(string(body, "peer")),
  "POST /v1/disconnect": (d, body) => ({ disconnected: d.disconnect(string(body, "peer")) }),
  "POST /v1/forget": (d, body) => d.forget(string(body, "peer")),
  "GET /v1/members": (d) => d.membersList(),
  "POST /v1/invite": (d, body) =>
    d.invite({
      ttlMs: positiveNumber(body, "ttlMs"),
      uses: positiveNumber(body, "uses"),
      nickname: optionalString(body, "name"),
      endpoints: stringList(body, "endpoints"),
    }),
  "POST /v1/invite/wireguard": (d, body) =>
    d.inviteWireguard(string(body, "name"), optionalString(body, "endpoint")),
  "GET /v1/invites": (d) => d.invitations(),
  "POST /v1/attach": (d, body) =>
    d.attach(string(body, "netns"), optionalString(body, "name"), optionalString(body, "ip")),
  "POST /v1/detach": (d, body) => d.detach(string(body, "netns")),
  "GET /v1/attachments": (d) => d.attachments(),
  "POST /v1/invite/revoke": (d, body) => ({ revoked: d.revokeInvitation(string(body, "id")) }),
  "POST /v1/down": (d) => {
    setTimeout(() => void d.stop("weft down"), 10); // answer first
    return { stopping: true };
  },
  "POST /v1/dns/add": (d, body) => ({
    added: d.dnsAdd(string(body, "name"), string(body, "address")),
  }),
  "POST /v1/dns/rm": (d, body) => ({
    removed: d.dnsRemove(string(body, "name"), optionalString(body, "address")),
  }),
  "GET /v1/dns/ls": (d) => d.dnsEntries.list().filter((e) => !e.deleted),
  "GET /v1/dns/lookup": (d, _body, query) => {
    const name = query.get("name");
    if (!name) throw new Error(`"name" is required`);
    return { name, ...d.dnsLookup(name) };
  },
  "GET /v1/ipam/status": (d) => ({
    range: d.config.range,
    ...d.allocator.status(),
    allocations: Object.fromEntries(
      [...d.allocator.allocations()].map(([handle, address]) => [handle, formatAddress(address)]),
    ),
    ring: d.allocator.ring.entries().map((e) => ({
      start: formatAddress(e.token),
      end: formatAddress(e.end - 1),
      owner: e.owner,
      free: e.free,
      version: e.version,
    })),
  }),
  "POST /v1/ipam/allocate": async (d, body) => ({
    handle: string(body, "handle"),
    address: await d.allocate(string(body, "handle"), optionalString(body, "address")),
  }),
  "POST /v1/ipam/release": (d, body) => ({ released: d.release(string(body, "handle")) }),
  "POST /v1/ipam/rmpeer": (d, body) => d.rmpeer(string(body, "peer")),
};

/** Serves the control API for `daemon` on `socketPath`; resolves once listening. */
export async function serveControl(daemon: Daemon, socketPath: string): Promise<Server> {
  rmSync(socketPath, { force: true }); // a socket left by a daemon that died (we hold the lock)
  const server = createServer((request, response) => {
    const reply = (status: number, value: unknown) => {
      const body = JSON.stringify(value ?? null);
      response.writeHead(status, { "content-type": "application/json" });
      response.end(body);
    };
    handle(daemon, request)
      .then((value) => reply(200, value))
      .catch((error: Error & { status?: number }) =>
        reply(error.status ?? 400, { error: error.message.split("\n")[0] }),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(socketPath, 0o600);
  return server;
}

async function handle(daemon: Daemon, request: IncomingMessage): Promise<unknown> {
  const url = new URL(request.url ?? "/", "http://weft");
  const route = ROUTES[`${request.method} ${url.pathname}`];
  if (!route) {
    throw Object.assign(new Error(`No such command: ${request.method} ${url.pathname}`), {
      status: 404,
    });
  }
  const body = request.method === "POST" ? await readJson(request) : {};
  return await route(daemon, body, url.searchParams);
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Uint8Array).length;
    if (size > MAX_BODY_BYTES) throw new Error("Request body too large");
    chunks.push(chunk as Uint8Array);
  }
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Error("Request body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("Request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}
