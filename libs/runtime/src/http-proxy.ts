// Passing one HTTP request on to another server and streaming its answer back: the web service's local
// /hls proxy and the LL-HLS origin's forwarding of playlist requests to a stream's owner replica.
import { type IncomingMessage, request, type ServerResponse } from 'node:http';

export interface ProxyOptions {
  /** Request headers sent upstream (the client's are not passed). */
  headers?: Record<string, string>;
  /** Response headers passed back to the client, lower case; the status always is. */
  passHeaders: readonly string[];
  /** The upstream has this long to answer (and to finish the body) before the request is given up. */
  timeoutMs: number;
  /**
   * The upstream failed (refused, reset, timed out) before anything was sent to the client: answer it
   * here. After the answer has started, the client's response is cut instead (it cannot be repaired).
   */
  onError: (error: Error) => void;
}

/** Sends `req`'s method to `target` and streams the answer into `res`; bodies are never buffered. */
export function proxyHttp(target: URL, req: IncomingMessage, res: ServerResponse, o: ProxyOptions): void {
  const out = request(target, { method: req.method, headers: o.headers ?? {} }, (answer) => {
    const headers: Record<string, string> = {};
    for (const name of o.passHeaders) {
      const value = answer.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    res.writeHead(answer.statusCode ?? 502, headers);
    answer.pipe(res);
    // The upstream went away mid-body (an origin killed while sending a segment): `pipe` would leave the
    // client's response open forever; cut it, so the player fails fast and asks again.
    answer.on('close', () => {
      if (!answer.complete) res.destroy();
    });
  });
  out.setTimeout(o.timeoutMs, () => out.destroy(new Error('upstream timeout')));
  out.on('error', (error) => {
    if (!res.headersSent) o.onError(error);
    else res.destroy();
  });
  // The client went away (a viewer closed the page mid-segment): stop fetching for it.
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  out.end();
}
