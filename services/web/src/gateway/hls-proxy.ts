// Local mode only: /hls/* and /ll/* (LL-HLS, whose playlist requests the origin holds for up to 3 s) are
// passed to the packager's origin (WEB_HLS_UPSTREAM), so the pages, the API and the video share one origin
// (http://localhost:8080) as design.md has it. Production pages read HLS from the CDN (WEB_HLS_BASE) and
// this proxy is off. Bodies are streamed, never buffered; the upstream's status, type and cache headers
// pass through (@live/runtime proxyHttp).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { proxyHttp, type RequestTarget } from '@live/runtime';
import type { Logger } from 'pino';

const PASSED = ['content-type', 'content-length', 'cache-control', 'etag', 'last-modified'];

export function proxyHls(
  upstream: string,
  url: RequestTarget,
  req: IncomingMessage,
  res: ServerResponse,
  logger: Logger,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  // The upstream with the request's path and query, never the request's target resolved against it: whatever
  // host the target named (an absolute-form URL, `//host/...`), the request goes to the origin, nowhere else.
  const target = new URL(upstream);
  target.pathname = url.pathname;
  target.search = url.search;
  proxyHttp(target, req, res, {
    headers: { accept: req.headers.accept ?? '*/*' },
    passHeaders: PASSED,
    // Above the LL-HLS origin's longest hold of a blocking playlist request (3 s).
    timeoutMs: 10_000,
    onError: (error) => {
      logger.warn({ err: error.message, path: target.pathname }, 'HLS upstream failed');
      res.writeHead(502, { 'content-type': 'text/plain' }).end('HLS origin unavailable\n');
    },
  });
}
