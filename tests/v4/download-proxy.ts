/**
 * A loopback TCP proxy that cuts the first connection once the server has sent a given number
 * of bytes to the client: a download interrupted mid-way (the upload proxy in helpers.ts cuts
 * the other direction).
 */
import net, { type AddressInfo } from 'node:net';

export class DownloadCutProxy {
  private readonly sockets = new Set<net.Socket>();
  private connections = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly targetPort: number,
    private readonly cutAfter: number,
  ) {}

  static async start(targetPort: number, cutAfter: number): Promise<DownloadCutProxy> {
    const server = net.createServer();
    const proxy = new DownloadCutProxy(server, targetPort, cutAfter);
    server.on('connection', (client) => proxy.onConnection(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private onConnection(client: net.Socket): void {
    const first = this.connections++ === 0;
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    let sent = 0;
    upstream.on('data', (chunk: Buffer) => {
      if (first && sent + chunk.length >= this.cutAfter) {
        client.end(chunk.subarray(0, Math.max(0, this.cutAfter - sent)));
        client.destroy();
        upstream.destroy();
        return;
      }
      sent += chunk.length;
      client.write(chunk);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
