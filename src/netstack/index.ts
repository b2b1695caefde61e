/** The userspace TCP/IP stack (#10): what applications and the CLI use. */

export {
  type ByteStreamPair,
  HTTP_DEFAULT_MAX_HEADER_BYTES,
  HTTP_DEFAULT_MAX_REQUEST_BODY_BYTES,
  HTTP_DEFAULT_REQUEST_TIMEOUT_MS,
  HttpError,
  type HttpErrorCode,
  type HttpGetOptions,
  type HttpHandler,
  type HttpHeaders,
  type HttpRequest,
  type HttpResponse,
  type HttpResponseInit,
  type HttpServing,
  httpGet,
  type ServeHttpOptions,
  serveHttp,
} from "./http1.ts";
export {
  NETSTACK_DEFAULT_MTU_BYTES,
  Netstack,
  type NetstackCounters,
  type NetstackOptions,
  type TcpHandler,
  type UdpBinding,
  type UdpHandler,
  type UdpReceived,
} from "./netstack.ts";
export {
  type TcpCloseReason,
  TcpConnection,
  type TcpConnectionEvents,
  type TcpConnectionOptions,
  type TcpKeepaliveOptions,
  type TcpState,
} from "./tcp-connection.ts";
export { resetFor, TcpListener, type TcpListenerOptions } from "./tcp-listener.ts";
export type { TcpFlags, TcpOptions, TcpSegment } from "./tcp-segment.ts";
export {
  DEFAULT_ACCEPT_BACKLOG,
  DEFAULT_MAX_TCP_CONNECTIONS,
  DEFAULT_READ_HIGH_WATER_BYTES,
  type DialOptions,
  type ListenOptions,
  TcpError,
  type TcpErrorCode,
  type TcpServer,
  TcpStack,
  type TcpStackCounters,
  type TcpStackOptions,
  TcpStream,
} from "./tcp-stack.ts";
export { netstackUdpConn } from "./udp-conn.ts";
