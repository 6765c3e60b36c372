// Server-sent events: one long-lived HTTP response per page, written as `event:` / `data:` frames. A
// comment every 15 s keeps proxies and load balancers from closing an idle stream; a client whose socket
// buffer grows past a bound (it stopped reading) is dropped rather than buffered without end.
import type { IncomingMessage, ServerResponse } from 'node:http';

const KEEPALIVE_MS = 15_000;
const MAX_BUFFERED_BYTES = 256 * 1024;

export interface SseStream {
  send(event: string, data: unknown): void;
  /** Called once when the page goes away (or is dropped). */
  onClose(cleanup: () => void): void;
}

export class SseHub {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly max: number) {}

  get count(): number {
    return this.open.size;
  }

  /** Starts an event stream, or answers 503 when this pod is full (the page's EventSource retries). */
  accept(req: IncomingMessage, res: ServerResponse): SseStream | null {
    if (this.open.size >= this.max) {
      res
        .writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' })
        .end('too many event streams\n');
      return null;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Nginx-style proxies buffer responses unless told not to.
      'x-accel-buffering': 'no',
    });
    // A page reconnecting after a network blip waits 1 s, not the browser default of 3.
    res.write('retry: 1000\n\n');
    req.socket.setNoDelay(true);
    this.open.add(res);
    const cleanups: (() => void)[] = [];
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      this.open.delete(res);
      for (const c of cleanups) c();
    };
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    res.on('close', close);
    return {
      send: (event, data) => {
        if (closed) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          res.destroy();
          close();
          return;
        }
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      },
      onClose: (cleanup) => {
        if (closed) cleanup();
        else cleanups.push(cleanup);
      },
    };
  }

  /** Ends every stream (shutdown): pages reconnect to another pod. */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}
