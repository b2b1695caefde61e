/** The local side of `weft up --userspace` (#10): SOCKS5, port forwards, and the pipe under them. */
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
  netstackUdpConn,
  openUdpAssociation,
  type Socks5UdpOptions,
  type UdpAssociation,
  type UdpCounts,
} from "./socks5-udp.ts";
