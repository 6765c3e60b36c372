// Reading an HTTP request's target safely, for every listener (ops, the worker's part server, the packager's
// origin, the web gateway, the chat): one parse that never throws, so no request can end a process. Before
// it, `GET /%` (decodeURIComponent) ended a worker and `GET http://a:b/` (new URL) ended a packager.
// A target that is not a path (origin-form) or an http(s) URL (absolute-form, RFC 9112 3.2.2), or whose
// path is not valid percent-encoding, is refused with 400 and its reason, in one warn line. An absolute-form
// target's scheme and host are dropped: only its path and query are used, so no request names the host a
// proxy fetches from. Requests Node's own parser refuses (bad method, header without a colon, binary bytes,
// a header section over 16 KiB) never reach a handler: `logParseErrors` answers and logs those.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

export interface RequestTarget {
  /** The path as sent (percent-encoded, dot segments resolved): `/hls/a%20b/x.m3u8`. */
  readonly pathname: string;
  /** The path percent-decoded: `/hls/a b/x.m3u8`. */
  readonly path: string;
  /** The query with its `?`, or ''. */
  readonly search: string;
  readonly searchParams: URLSearchParams;
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:/i;
/** Targets in log lines are cut to this many characters (a request line may be 16 KiB). */
const LOGGED_TARGET_CHARS = 200;

/** The request target (`req.url`), or why it is not a valid one. Never throws. */
export function parseRequestTarget(raw: string | undefined): RequestTarget | { error: string } {
  if (!raw) return { error: 'empty request target' };
  let url: URL;
  try {
    if (raw.startsWith('/')) {
      // Appended to a fixed origin, never resolved against it: `//host/x` stays a path, not a host.
      url = new URL(`http://request.invalid${raw}`);
    } else if (ABSOLUTE_FORM.test(raw)) {
      url = new URL(raw);
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        return { error: `request target is a ${url.protocol} URL, not http(s)` };
    } else {
      return { error: 'request target is neither a path nor an http(s) URL' };
    }
  } catch {
    return { error: 'request target is not a valid URL' };
  }
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return { error: 'malformed percent-encoding in the path' };
  }
  return { pathname: url.pathname, path, search: url.search, searchParams: url.searchParams };
}

/** The one warn line for a refused request: method, target (cut), peer, reason. */
export function logMalformedRequest(logger: Logger, req: IncomingMessage, reason: string): void {
  logger.warn(
    {
      method: req.method,
      target: (req.url ?? '').slice(0, LOGGED_TARGET_CHARS),
      peer: req.socket.remoteAddress,
      reason,
    },
    'malformed HTTP request refused',
  );
}

/**
 * For a request handler's first line: the target, or null once the request has been answered 400 with the
 * reason (and logged once, at warn).
 */
export function requestTarget(
  req: IncomingMessage,
  res: ServerResponse,
  logger: Logger,
): RequestTarget | null {
  const target = parseRequestTarget(req.url);
  if (!('error' in target)) return target;
  logMalformedRequest(logger, req, target.error);
  const body = `bad request: ${target.error}\n`;
  res
    .writeHead(400, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    })
    .end(body);
  return null;
}

const STATUS_FOR: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * Requests Node's HTTP parser refuses before any handler sees them: answered as Node would (400, or 431,
 * 413, 408), with the parser's reason in the body, and the parse errors logged once each at warn. A client
 * that resets or times out is only closed (not logged: viewers close connections all the time).
 */
export function logParseErrors(server: Server, logger: Logger): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const code = error.code ?? '';
    if (code.startsWith('HPE_'))
      logger.warn(
        { code, reason: error.message.slice(0, LOGGED_TARGET_CHARS), peer: socket.remoteAddress },
        'malformed HTTP request refused',
      );
    // Only on a connection that has not been answered yet: never into the middle of another response.
    if ((code.startsWith('HPE_') || code in STATUS_FOR) && socket.writable && socket.bytesWritten === 0) {
      const body = `bad request: ${error.message}\n`;
      socket.write(
        `HTTP/1.1 ${STATUS_FOR[code] ?? '400 Bad Request'}\r\nConnection: close\r\n` +
          `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  });
}
