/**
 * A minimal HTTP/1.1 client and server over any byte stream pair with Web Streams
 * `readable` and `writable`, such as a `TcpStream` (#10): enough to fetch a file over the
 * userspace stack and to serve one to a kernel's `curl`. One request per connection
 * (`Connection: close`), no pipelining, no keep-alive, no TLS.
 *
 * ```
 *  httpGet:   GET ─► status line, headers (at most maxHeaderBytes) ─► body: Content-Length,
 *                                                                     chunked, or to the close
 *  serveHttp: accept ─► request line, headers, Content-Length body ─► handler ─► response
 *             with Content-Length (or delimited by our close) ─► FIN ─► drain until theirs
 * ```
 *
 * Bytes that are not HTTP (a bad status line, a header too large, a length that is not a
 * number, a body cut short) reject with an `HttpError` that says what was wrong; nothing
 * here throws out of a callback or leaves a promise unhandled. Runtime-agnostic: only Web
 * Streams and TextEncoder/TextDecoder.
 */
import { type Clock, systemClock } from "../clock.ts";

/** Bytes of status/request line plus headers accepted by default (a kernel's is 8-16 KiB). */
export const HTTP_DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** Bytes of request body `serveHttp` reads into memory by default; larger requests get 413. */
export const HTTP_DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024;
/** How long `serveHttp` waits for a whole request by default. */
export const HTTP_DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Bytes a server reads and discards after its response while waiting for the client's close. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

/** What `httpGet` and `serveHttp` talk over: a `TcpStream` or anything shaped like one. */
export interface ByteStreamPair {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

/** Why an HTTP exchange failed. */
export type HttpErrorCode =
  | "MALFORMED"
  | "HEADER_TOO_LARGE"
  | "BODY_TOO_LARGE"
  | "TRUNCATED"
  | "TIMEOUT"
  | "UNSUPPORTED";

export class HttpError extends Error {
  readonly code: HttpErrorCode;
  constructor(code: HttpErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = "HttpError";
    this.code = code;
  }
}

/** Header fields by lower-case name; repeated fields are joined with ", ". */
export type HttpHeaders = ReadonlyMap<string, string>;

export interface HttpGetOptions {
  /** The Host header (a name or "address:port"). */
  readonly host: string;
  /** The request target, starting with "/". */
  readonly path: string;
  /** More request headers; they replace our User-Agent and Accept (Host and Connection are ours). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly maxHeaderBytes?: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: HttpHeaders;
  /**
   * The body, decoded from chunked if it was; errors with an HttpError TRUNCATED when the
   * connection ends before the Content-Length or the last chunk. Cancel it to abandon the
   * connection.
   */
  readonly body: ReadableStream<Uint8Array>;
}

export interface HttpRequest {
  readonly method: string;
  /** The request target as sent, such as "/file?x=1". */
  readonly path: string;
  /** "HTTP/1.0" or "HTTP/1.1". */
  readonly version: string;
  readonly headers: HttpHeaders;
  /** The request body (empty without a Content-Length). */
  readonly body: Uint8Array;
}

export interface HttpResponseInit {
  readonly status: number;
  /** Response headers; Content-Length and Connection are set here, not by the handler. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * A Uint8Array is sent with its Content-Length. A stream is sent with the Content-Length
   * of `contentLength` when given (the connection is reset if the stream's length
   * differs), else delimited by closing the connection.
   */
  readonly body?: Uint8Array | ReadableStream<Uint8Array>;
  readonly contentLength?: number;
}

export type HttpHandler = (request: HttpRequest) => HttpResponseInit | Promise<HttpResponseInit>;

export interface ServeHttpOptions {
  readonly maxHeaderBytes?: number;
  readonly maxRequestBodyBytes?: number;
  /**
   * A client that has not sent its whole request within this many ms is reset, so idle
   * or trickling connections cannot pile up (0: wait forever). 30 s by default.
   */
  readonly requestTimeoutMs?: number;
  /** The clock for `requestTimeoutMs`; the system clock by default. */
  readonly clock?: Pick<Clock, "setTimer">;
  /** Called with each connection's failure (a malformed request, a reset); never throws. */
  readonly onError?: (error: unknown) => void;
}

/** A running server: `done` settles once the listener stops and every connection ended. */
export interface HttpServing {
  readonly done: Promise<void>;
}

const CRLF = new Uint8Array([13, 10]);
const encoder = new TextEncoder();

/** Buffered reading of a ReadableStream: lines with a bound, exact counts, or what is there. */
class ByteReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer: Uint8Array = new Uint8Array(0);
  #ended = false;

  constructor(readable: ReadableStream<Uint8Array>) {
    this.#reader = readable.getReader();
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const { done, value } = await this.#reader.read();
    if (done) {
      this.#ended = true;
      return false;
    }
    if (value.length === 0) return true;
    if (this.#buffer.length === 0) {
      this.#buffer = value;
    } else {
      const joined = new Uint8Array(this.#buffer.length + value.length);
      joined.set(this.#buffer);
      joined.set(value, this.#buffer.length);
      this.#buffer = joined;
    }
    return true;
  }

  /**
   * Bytes up to and including the first occurrence of `delimiter`, or undefined at the end
   * of the stream before any byte. Throws when more than `limit` bytes pass without it.
   */
  async readUntil(
    delimiter: Uint8Array,
    limit: number,
    tooLong: () => HttpError,
  ): Promise<Uint8Array | undefined> {
    let searchedTo = 0;
    for (;;) {
      const at = indexOf(this.#buffer, delimiter, searchedTo);
      if (at >= 0) {
        const end = at + delimiter.length;
        if (end > limit) throw tooLong();
        return this.take(end);
      }
      if (this.#buffer.length > limit) throw tooLong();
      searchedTo = Math.max(0, this.#buffer.length - delimiter.length + 1);
      if (!(await this.#fill())) {
        if (this.#buffer.length === 0) return undefined;
        throw new HttpError(
          "TRUNCATED",
          `the connection ended after ${this.#buffer.length} bytes of an unfinished line or header`,
        );
      }
    }
  }

  /** At most `max` bytes: buffered ones first, else one read; undefined at the end. */
  async readSome(max: number): Promise<Uint8Array | undefined> {
    if (this.#buffer.length === 0 && !(await this.#fill())) return undefined;
    return this.take(Math.min(max, this.#buffer.length));
  }

  /** Exactly `n` bytes, or undefined if the stream ends first. */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    while (this.#buffer.length < n) {
      if (!(await this.#fill())) return undefined;
    }
    return this.take(n);
  }

  /**
   * The next `n` buffered bytes, as a view: the chunks a ReadableStream hands its reader
   * are the reader's, so the body passes them on without a copy.
   */
  take(n: number): Uint8Array {
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason).catch(() => {});
  }

  release(): void {
    this.#reader.releaseLock();
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0]!;
  for (let i = haystack.indexOf(first, from); i >= 0; i = haystack.indexOf(first, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let match = true;
    for (let k = 1; k < needle.length; k++) {
      if (haystack[i + k] !== needle[k]) {
        match = false;
        break;
      }
    }
    if (match) return i;
  }
  return -1;
}

/** Header bytes as text, one char per byte (obs-text survives, nothing is UTF-8 decoded). */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return text;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, obs-text, spaces and tabs; no control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is refused
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** Parses the header block (after the first line, without the final CRLF CRLF). */
function parseHeaderLines(lines: readonly string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    if (line.length === 0) continue;
    if (line[0] === " " || line[0] === "\t") {
      throw new HttpError("MALFORMED", "a folded header line (obs-fold) is not accepted");
    }
    const colon = line.indexOf(":");
    if (colon <= 0)
      throw new HttpError("MALFORMED", `a header line without a name: ${quote(line)}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpError("MALFORMED", `a bad header name: ${quote(name)}`);
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) {
      throw new HttpError("MALFORMED", `a control character in header ${quote(name)}`);
    }
    const key = name.toLowerCase();
    const earlier = headers.get(key);
    headers.set(key, earlier === undefined ? value : `${earlier}, ${value}`);
  }
  return headers;
}

/** At most 60 characters of `text`, quoted, for error messages about hostile input. */
function quote(text: string): string {
  const cut = text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return JSON.stringify(cut);
}

/** Reads the head (first line and headers) within `maxBytes`; undefined for no bytes at all. */
async function readHead(
  reader: ByteReader,
  maxBytes: number,
): Promise<{ first: string; headers: Map<string, string> } | undefined> {
  const head = await reader.readUntil(
    new Uint8Array([13, 10, 13, 10]),
    maxBytes,
    () => new HttpError("HEADER_TOO_LARGE", `the header is larger than ${maxBytes} bytes`),
  );
  if (head === undefined) return undefined;
  const lines = latin1(head.subarray(0, head.length - 4)).split("\r\n");
  const first = lines.shift() ?? "";
  return { first, headers: parseHeaderLines(lines) };
}

/** The Content-Length, undefined when absent; throws for anything but one decimal number. */
function contentLength(headers: HttpHeaders): number | undefined {
  const raw = headers.get("content-length");
  if (raw === undefined) return undefined;
  const values = new Set(raw.split(",").map((v) => v.trim()));
  if (values.size !== 1)
    throw new HttpError("MALFORMED", `conflicting Content-Length ${quote(raw)}`);
  const [value] = values as unknown as [string];
  if (!/^\d{1,15}$/.test(value))
    throw new HttpError("MALFORMED", `bad Content-Length ${quote(raw)}`);
  return Number(value);
}

function isChunked(headers: HttpHeaders): boolean {
  const raw = headers.get("transfer-encoding");
  if (raw === undefined) return false;
  const codings = raw.split(",").map((v) => v.trim().toLowerCase());
  return codings[codings.length - 1] === "chunked";
}

/** A body of exactly `length` bytes from `reader`. */
function lengthBody(
  reader: ByteReader,
  length: number,
  onEnd: (error?: unknown) => void,
): ReadableStream<Uint8Array> {
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (left === 0) {
          controller.close();
          onEnd();
          return;
        }
        const chunk = await reader.readSome(Math.min(left, 256 * 1024));
        if (chunk === undefined) {
          throw new HttpError(
            "TRUNCATED",
            `the connection ended after ${length - left} of ${length} body bytes`,
          );
        }
        left -= chunk.length;
        controller.enqueue(chunk);
        if (left === 0) {
          controller.close();
          onEnd();
        }
      } catch (error) {
        controller.error(error);
        onEnd(error);
      }
    },
    cancel(reason) {
      onEnd(reason ?? new Error("cancelled"));
    },
  });
}

/** A body delimited by the end of the connection. */
function closeDelimitedBody(
  reader: ByteReader,
  onEnd: (error?: unknown) => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await reader.readSome(256 * 1024);
        if (chunk === undefined) {
          controller.close();
          onEnd();
        } else {
          controller.enqueue(chunk);
        }
      } catch (error) {
        controller.error(error);
        onEnd(error);
      }
    },
    cancel(reason) {
      onEnd(reason ?? new Error("cancelled"));
    },
  });
}

/** A chunked body (RFC 9112 §7.1): chunk sizes with extensions ignored, trailers skipped. */
function chunkedBody(
  reader: ByteReader,
  maxLineBytes: number,
  onEnd: (error?: unknown) => void,
): ReadableStream<Uint8Array> {
  let left = 0; // bytes left in the current chunk
  let finished = false;
  const line = async (what: string): Promise<string> => {
    const bytes = await reader.readUntil(
      CRLF,
      maxLineBytes,
      () => new HttpError("HEADER_TOO_LARGE", `a chunk ${what} longer than ${maxLineBytes} bytes`),
    );
    if (bytes === undefined)
      throw new HttpError("TRUNCATED", `the connection ended before a chunk ${what}`);
    return latin1(bytes.subarray(0, bytes.length - 2));
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (left === 0) {
          const sizeLine = await line("size");
          const size = sizeLine.split(";")[0]!.trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
            throw new HttpError("MALFORMED", `a bad chunk size ${quote(sizeLine)}`);
          }
          left = Number.parseInt(size, 16);
          if (left === 0) {
            while ((await line("trailer")).length > 0) {
              // trailer fields are not kept
            }
            finished = true;
            controller.close();
            onEnd();
            return;
          }
        }
        const chunk = await reader.readSome(left);
        if (chunk === undefined)
          throw new HttpError("TRUNCATED", "the connection ended inside a chunk");
        left -= chunk.length;
        controller.enqueue(chunk);
        if (left === 0 && (await line("end")).length !== 0) {
          throw new HttpError("MALFORMED", "a chunk longer than its size");
        }
      } catch (error) {
        controller.error(error);
        onEnd(error);
      }
    },
    cancel(reason) {
      if (!finished) onEnd(reason ?? new Error("cancelled"));
    },
  });
}

function emptyBody(): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
}

/**
 * Sends `GET path` with `Connection: close` on `stream` and resolves with the status,
 * headers and a streaming body once the header has arrived. Rejects with an HttpError
 * for a response that is not HTTP/1.x or a header over `maxHeaderBytes`, or with the
 * stream's error. When the body has been read to its end (or cancelled) the stream is
 * closed; the caller need not close it.
 */
export async function httpGet(
  stream: ByteStreamPair,
  options: HttpGetOptions,
): Promise<HttpResponse> {
  const maxHeaderBytes = options.maxHeaderBytes ?? HTTP_DEFAULT_MAX_HEADER_BYTES;
  if (!/^\/[!-~]*$/.test(options.path)) {
    throw new HttpError(
      "MALFORMED",
      `the path must start with "/" and hold no spaces: ${quote(options.path)}`,
    );
  }
  const extra = Object.entries(options.headers ?? {});
  // A header the caller gives replaces our default of the same name (names are case-blind).
  const given = new Set(extra.map(([name]) => name.toLowerCase()));
  const defaults: [string, string][] = [
    ["User-Agent", "weft-netstack"],
    ["Accept", "*/*"],
  ];
  const fields: [string, string][] = [
    ["Host", options.host],
    ...defaults.filter(([name]) => !given.has(name.toLowerCase())),
    ...extra.filter(([name]) => !["host", "connection"].includes(name.toLowerCase())),
    ["Connection", "close"],
  ];
  for (const [name, value] of fields) {
    if (!TOKEN.test(name) || BAD_VALUE.test(value) || value.includes("\n")) {
      throw new HttpError("MALFORMED", `a bad request header ${quote(name)}`);
    }
  }
  const request = `GET ${options.path} HTTP/1.1\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
  const writer = stream.writable.getWriter();
  const reader = new ByteReader(stream.readable);
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    if (error !== undefined) {
      // Abandoned or broken: reset rather than wait for the rest.
      void writer.abort(error).catch(() => {});
      void reader.cancel(error);
      return;
    }
    // Done: our FIN, then whatever the server still sends is read and dropped.
    void writer.close().catch(() => {});
    void drain(reader);
  };
  try {
    await writer.write(encoder.encode(request));
    const head = await readHead(reader, maxHeaderBytes);
    if (head === undefined)
      throw new HttpError("TRUNCATED", "the connection ended before a response");
    const match = /^HTTP\/1\.([01]) ([1-5][0-9][0-9])(?: (.*))?$/.exec(head.first);
    if (match === null) throw new HttpError("MALFORMED", `a bad status line ${quote(head.first)}`);
    const status = Number(match[2]);
    const statusText = match[3] ?? "";
    const headers = head.headers;
    let body: ReadableStream<Uint8Array>;
    if (status < 200 || status === 204 || status === 304) {
      if (status < 200) throw new HttpError("UNSUPPORTED", `an interim response ${status}`);
      body = emptyBody();
      end();
    } else if (isChunked(headers)) {
      body = chunkedBody(reader, maxHeaderBytes, end);
    } else if (headers.has("transfer-encoding")) {
      body = closeDelimitedBody(reader, end);
    } else {
      const length = contentLength(headers);
      if (length === undefined) body = closeDelimitedBody(reader, end);
      else if (length === 0) {
        body = emptyBody();
        end();
      } else body = lengthBody(reader, length, end);
    }
    return { status, statusText, headers, body };
  } catch (error) {
    end(error);
    throw error;
  }
}

/** Reads and drops what the peer still sends, up to a bound, until its close. */
async function drain(reader: ByteReader): Promise<void> {
  let dropped = reader.buffered;
  reader.take(reader.buffered);
  try {
    for (;;) {
      const chunk = await reader.readSome(DRAIN_LIMIT_BYTES);
      if (chunk === undefined) return;
      dropped += chunk.length;
      if (dropped > DRAIN_LIMIT_BYTES) {
        await reader.cancel(new Error("the peer kept sending after the exchange"));
        return;
      }
    }
  } catch {
    // a reset after the exchange changes nothing
  }
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  505: "HTTP Version Not Supported",
};

/**
 * Serves HTTP/1.0 and 1.1 on every connection `server` yields (a `TcpServer`), one
 * request per connection: parses the request (a bad one gets 400, 413, 431, 501 or 505
 * and the connection closes), calls `handler`, sends its response with Content-Length
 * and `Connection: close`, then closes. A handler that throws gives 500. Connections are
 * served concurrently; `done` settles when the server stops and they have all ended.
 */
export function serveHttp(
  server: AsyncIterable<ByteStreamPair>,
  handler: HttpHandler,
  options: ServeHttpOptions = {},
): HttpServing {
  const active = new Set<Promise<void>>();
  const onError = (error: unknown) => {
    try {
      options.onError?.(error);
    } catch {
      // a logging hook must not take the server down
    }
  };
  const done = (async () => {
    try {
      for await (const stream of server) {
        const task = serveOne(stream, handler, options, onError).catch(onError);
        active.add(task);
        void task.finally(() => active.delete(task));
      }
    } catch (error) {
      onError(error);
    }
    await Promise.all([...active]);
  })();
  return { done };
}

async function serveOne(
  stream: ByteStreamPair,
  handler: HttpHandler,
  options: ServeHttpOptions,
  onError: (error: unknown) => void,
): Promise<void> {
  const maxHeaderBytes = options.maxHeaderBytes ?? HTTP_DEFAULT_MAX_HEADER_BYTES;
  const maxBody = options.maxRequestBodyBytes ?? HTTP_DEFAULT_MAX_REQUEST_BODY_BYTES;
  const reader = new ByteReader(stream.readable);
  const writer = stream.writable.getWriter();
  let response: HttpResponseInit;
  let method = "GET";
  const timeoutMs = options.requestTimeoutMs ?? HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
  let timedOut: HttpError | undefined;
  const cancelTimer =
    timeoutMs > 0
      ? (options.clock ?? systemClock).setTimer(timeoutMs, () => {
          timedOut = new HttpError("TIMEOUT", `no whole request within ${timeoutMs} ms`);
          void writer.abort(timedOut).catch(() => {});
          void reader.cancel(timedOut);
        })
      : () => {};
  try {
    const request = await readRequest(reader, maxHeaderBytes, maxBody).finally(cancelTimer);
    if (timedOut !== undefined) {
      onError(timedOut);
      return;
    }
    if (request === undefined) {
      // Closed without a request (a port probe): just close ours.
      await writer.close().catch(() => {});
      return;
    }
    method = request.method;
    try {
      response = await handler(request);
    } catch (error) {
      onError(error);
      response = plain(500, "the handler failed\n");
    }
  } catch (error) {
    if (timedOut !== undefined) {
      onError(timedOut);
      return;
    }
    onError(error);
    response = errorResponse(error);
  }
  try {
    await writeResponse(writer, response, method === "HEAD");
    await writer.close();
  } catch (error) {
    // The body stream failed or its length was wrong: a reset tells the client it is cut.
    onError(error);
    await writer.abort(error).catch(() => {});
    await reader.cancel(error);
    return;
  }
  await drain(reader);
}

function plain(status: number, text: string): HttpResponseInit {
  return {
    status,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
    body: encoder.encode(text),
  };
}

function errorResponse(error: unknown): HttpResponseInit {
  if (!(error instanceof HttpError)) return plain(400, "the request could not be read\n");
  switch (error.code) {
    case "HEADER_TOO_LARGE":
      return plain(431, `${error.message}\n`);
    case "BODY_TOO_LARGE":
      return plain(413, `${error.message}\n`);
    case "UNSUPPORTED":
      return plain(error.message.includes("version") ? 505 : 501, `${error.message}\n`);
    default:
      return plain(400, `${error.message}\n`);
  }
}

async function readRequest(
  reader: ByteReader,
  maxHeaderBytes: number,
  maxBody: number,
): Promise<HttpRequest | undefined> {
  const head = await readHead(reader, maxHeaderBytes);
  if (head === undefined) return undefined;
  const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(head.first);
  if (match === null) throw new HttpError("MALFORMED", `a bad request line ${quote(head.first)}`);
  if (match[3] !== "1" || (match[4] !== "0" && match[4] !== "1")) {
    throw new HttpError("UNSUPPORTED", `HTTP version ${match[3]}.${match[4]} is not served`);
  }
  const version = `HTTP/1.${match[4]}`;
  const headers = head.headers;
  if (version === "HTTP/1.1" && !headers.has("host")) {
    throw new HttpError("MALFORMED", "an HTTP/1.1 request without a Host header");
  }
  if (headers.has("transfer-encoding")) {
    throw new HttpError("UNSUPPORTED", "request bodies with a Transfer-Encoding are not accepted");
  }
  const length = contentLength(headers) ?? 0;
  if (length > maxBody) {
    throw new HttpError(
      "BODY_TOO_LARGE",
      `a request body of ${length} bytes, more than ${maxBody}`,
    );
  }
  let body = new Uint8Array(0);
  if (length > 0) {
    const bytes = await reader.readExact(length);
    if (bytes === undefined)
      throw new HttpError("TRUNCATED", "the connection ended inside the request body");
    body = bytes.slice();
  }
  return { method: match[1]!, path: match[2]!, version, headers, body };
}

async function writeResponse(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  response: HttpResponseInit,
  head: boolean,
): Promise<void> {
  const status = response.status;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new HttpError("MALFORMED", `the handler gave status ${status}`);
  }
  const body = response.body ?? new Uint8Array(0);
  const length = body instanceof Uint8Array ? body.length : response.contentLength;
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
    throw new HttpError("MALFORMED", `the handler gave a content length of ${length}`);
  }
  let text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}\r\n`;
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === "content-length" || lower === "connection" || lower === "transfer-encoding") {
      continue;
    }
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) {
      throw new HttpError("MALFORMED", `the handler gave a bad header ${quote(name)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  if (length !== undefined) text += `Content-Length: ${length}\r\n`;
  text += "Connection: close\r\n\r\n";
  const headBytes = encoder.encode(text);
  if (head) {
    if (!(body instanceof Uint8Array)) await body.cancel().catch(() => {});
    await writer.write(headBytes);
    return;
  }
  if (body instanceof Uint8Array) {
    // One write for a small response; separate ones so a large body is not copied.
    if (body.length <= 16 * 1024) {
      const joined = new Uint8Array(headBytes.length + body.length);
      joined.set(headBytes);
      joined.set(body, headBytes.length);
      await writer.write(joined);
    } else {
      await writer.write(headBytes);
      await writer.write(body);
    }
    return;
  }
  await writer.write(headBytes);
  const source = body.getReader();
  let sent = 0;
  try {
    for (;;) {
      const { done, value } = await source.read();
      if (done) break;
      sent += value.length;
      if (length !== undefined && sent > length) {
        throw new HttpError("MALFORMED", `the body is longer than its Content-Length ${length}`);
      }
      await writer.write(value);
    }
  } catch (error) {
    await source.cancel(error).catch(() => {});
    throw error;
  }
  if (length !== undefined && sent !== length) {
    throw new HttpError("TRUNCATED", `the body ended after ${sent} of ${length} bytes`);
  }
}
