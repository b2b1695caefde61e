/**
 * A peer in another process that sends numbered datagrams to a port on 127.0.0.1 at a
 * steady rate, for tests of receiving under load; on `node:dgram`, apart from the
 * adapters under test. Each datagram starts with its number (32 bits, big-endian).
 *
 * Usage: `<runtime> test/helpers/udp-sender.ts PORT COUNT BYTES PER_SECOND`; prints how
 * many datagrams the system accepted, then exits.
 */
import { createSocket } from "node:dgram";

/** At most this many datagrams at once when the sender's timer fires late. */
const MAX_BURST = 32;

const [port, count, bytes, perSecond] = process.argv.slice(2, 6).map(Number) as [
  number,
  number,
  number,
  number,
];
const socket = createSocket("udp4");
let queued = 0;
let accepted = 0;
let done = 0;
let start = 0;

function afterSend(error: Error | null): void {
  if (!error) accepted++;
  if (++done === count) socket.close(() => console.log(accepted));
}

/** Sends what is due by now, so the rate holds however late the timer fires. */
function tick(): void {
  const due = Math.floor(((performance.now() - start) * perSecond) / 1000);
  const end = Math.min(count, due, queued + MAX_BURST);
  for (; queued < end; queued++) {
    // A fresh buffer each: dgram reads it only when the send runs.
    const data = new Uint8Array(bytes);
    new DataView(data.buffer).setUint32(0, queued);
    socket.send(data, port, "127.0.0.1", afterSend);
  }
  if (queued < count) setTimeout(tick, 1);
}

socket.bind(0, "127.0.0.1", () => {
  start = performance.now();
  tick();
});
