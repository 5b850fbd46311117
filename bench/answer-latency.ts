/**
 * How long a client waits for its 1603: a pass-through TCP proxy between `sft-client` and the
 * server that notes when the last packet of an upload (a 1028 whose packet number equals its
 * total, docs/protocol.md §5.4) has passed and when the 1603 that answers it comes back. It
 * reads frame boundaries only (§1: the sizes in the headers), so it measures any server.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const REQUEST_HEADER = 23;
const REQUEST_SIZE_AT = 19;
const REQUEST_CODE_AT = 17;
const RESPONSE_HEADER = 7;
const RESPONSE_SIZE_AT = 3;
const RESPONSE_CODE_AT = 1;
const SEND_FILE = 1028;
const FILE_RECEIVED = 1603;
/** content size, orig size, packet number, total packets: the packet fields of a 1028. */
const SEND_FILE_PREFIX = 12;
const PACKET_AT = 8;
const TOTAL_AT = 10;

/** Walks a byte stream frame by frame; calls `onFrame` with the header and the payload's start. */
class FrameScanner {
  private readonly header: Buffer;
  private headerHave = 0;
  private readonly prefix = Buffer.alloc(SEND_FILE_PREFIX);
  private prefixHave = 0;
  private remaining = 0;

  constructor(
    private readonly headerSize: number,
    private readonly sizeAt: number,
    private readonly onFrame: (header: Buffer, prefix: Buffer) => void,
  ) {
    this.header = Buffer.alloc(headerSize);
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.headerHave < this.headerSize) {
        const take = Math.min(this.headerSize - this.headerHave, chunk.length - at);
        chunk.copy(this.header, this.headerHave, at, at + take);
        this.headerHave += take;
        at += take;
        if (this.headerHave < this.headerSize) return;
        this.remaining = this.header.readUInt32LE(this.sizeAt);
        this.prefixHave = 0;
      } else {
        const take = Math.min(this.remaining, chunk.length - at);
        if (this.prefixHave < SEND_FILE_PREFIX) {
          const copied = Math.min(take, SEND_FILE_PREFIX - this.prefixHave);
          chunk.copy(this.prefix, this.prefixHave, at, at + copied);
          this.prefixHave += copied;
        }
        this.remaining -= take;
        at += take;
      }
      if (this.remaining === 0) {
        this.onFrame(this.header, this.prefix.subarray(0, this.prefixHave));
        this.headerHave = 0;
      }
    }
  }
}

export interface LatencyProxy {
  readonly port: number;
  /** Milliseconds from each upload's last packet to its 1603, in arrival order. */
  readonly latencies: readonly number[];
  close(): Promise<void>;
}

function relay(from: Socket, to: Socket, scanner: FrameScanner): void {
  from.on('data', (chunk: Buffer) => {
    scanner.push(chunk);
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('end', () => to.end());
  from.on('error', () => to.destroy());
  from.on('close', () => to.destroy());
}

/** Listens on loopback and relays every connection to `targetPort`, timing the 1603s. */
export function startLatencyProxy(targetPort: number): Promise<LatencyProxy> {
  const latencies: number[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ port: targetPort, host: '127.0.0.1' });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    const lastPackets: number[] = [];
    const requests = new FrameScanner(REQUEST_HEADER, REQUEST_SIZE_AT, (header, prefix) => {
      if (header.readUInt16LE(REQUEST_CODE_AT) !== SEND_FILE) return;
      if (prefix.length < SEND_FILE_PREFIX) return;
      if (prefix.readUInt16LE(PACKET_AT) === prefix.readUInt16LE(TOTAL_AT)) {
        lastPackets.push(performance.now());
      }
    });
    const responses = new FrameScanner(RESPONSE_HEADER, RESPONSE_SIZE_AT, (header) => {
      // The bench's uploads all succeed: each 1603 answers the oldest unanswered last packet.
      if (header.readUInt16LE(RESPONSE_CODE_AT) !== FILE_RECEIVED) return;
      const sentAt = lastPackets.shift();
      if (sentAt !== undefined) latencies.push(performance.now() - sentAt);
    });
    relay(client, upstream, requests);
    relay(upstream, client, responses);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      resolve({
        port,
        latencies,
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
