/**
 * The local side of `weft up --userspace` (#10): SOCKS5, port forwards, and the pipe under
 * them. Host sockets come through the stream seam (`Runtime.listenTcp`/`dialTcp`), mesh
 * connections from a `TcpStack`; nothing here knows which runtime it is on.
 *
 * @example Wiring, as the daemon would do it
 * ```ts
 * const socks = serveSocks5({
 *   listener: await runtime.listenTcp({ address: "127.0.0.1", port: 1080 }),
 *   dial: (host, port) => tcp.dial(host, port, { timeoutMs: 10_000 }),
 *   clock: runtime.clock,
 *   udp: { listenUdp: (o) => runtime.listenUdp(o), bindMesh: () => netstackUdpConn(netstack) },
 * });
 * const f = parseForwardSpec("5432:db.mesh:5432");
 * const forward = serveForward({
 *   listener: await runtime.listenTcp({ address: f.bindAddress, port: f.localPort }),
 *   dial: () => tcp.dial(f.host, f.port),
 * });
 * const e = parseExposeSpec("8080");
 * const expose = serveExpose({
 *   server: tcp.listen(e.meshPort),
 *   dialLocal: () => runtime.dialTcp({ address: e.localHost, port: e.localPort }, 5_000),
 * });
 * ```
 */
export {
  DEFAULT_EXPOSE_HOST,
  DEFAULT_FORWARD_BIND,
  type ExposeOptions,
  type ExposeSpec,
  type ForwardOptions,
  type ForwardSpec,
  type ProxyService,
  parseExposeSpec,
  parseForwardSpec,
  serveExpose,
  serveForward,
} from "./forward.ts";
export {
  DEFAULT_PIPE_HIGH_WATER_BYTES,
  type Pipe,
  type PipeCounters,
  type PipeOptions,
  type PipeResult,
  pipe,
} from "./pipe.ts";
export {
  DEFAULT_MAX_PROXY_CONNECTIONS,
  type ProxyLog,
  type ProxyLogLevel,
  type RelayCounters,
} from "./sessions.ts";
export * from "./socks5-codec.ts";
export {
  DEFAULT_SOCKS_DIAL_TIMEOUT_MS,
  DEFAULT_SOCKS_HANDSHAKE_TIMEOUT_MS,
  type Socks5Counters,
  type Socks5Server,
  type Socks5ServerOptions,
  serveSocks5,
  socks5ReplyFor,
} from "./socks5-server.ts";
export {
  openUdpAssociation,
  type Socks5UdpOptions,
  type UdpAssociation,
  type UdpCounts,
} from "./socks5-udp.ts";
