import net from 'node:net';

/** What the proxy does with traffic right now. */
export type ProxyMode = 'pass' | 'down';

/**
 * A TCP proxy the test controls, between the instances and the machine's PostgreSQL: it
 * forwards bytes both ways, delays each chunk by `latencyMs`, and in `down` mode cuts every
 * open connection and refuses new ones at once (an outage, without stopping the real server).
 */
export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private modeValue: ProxyMode = 'pass';
  /** Delay added to every chunk, each way. */
  latencyMs = 0;
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Starts a proxy on 127.0.0.1 (a free port) in front of host:port. */
  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetHost, targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The port instances connect to. */
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get mode(): ProxyMode {
    return this.modeValue;
  }

  /** `down` cuts every connection now and refuses new ones until `pass`. */
  setMode(mode: ProxyMode): void {
    this.modeValue = mode;
    if (mode === 'down') for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.modeValue === 'down') {
      client.destroy();
      return;
    }
    this.connections += 1;
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    const pipe = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk: Buffer) => {
        // Order is kept: every chunk waits the same delay, and timers of equal delay fire in order.
        if (this.latencyMs === 0) to.write(chunk);
        else setTimeout(() => to.write(chunk), this.latencyMs);
      });
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }
}
