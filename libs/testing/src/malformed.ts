// Hostile requests for any listening port: what a scanner, a broken client or an attacker sends. Each goes
// on its own raw TCP connection (node:net, never fetch: nothing is normalised or refused on this side), all
// at once, each with a short read timeout, so the whole list takes about `timeoutMs` whatever the port
// speaks (HTTP, WebSocket, RTMP) and whether or not it answers. Used by the services' tests ("still alive
// and still serving afterwards") and by the chaos soak, which sends it to every listening port.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

export interface MalformedRequest {
  name: string;
  /** The bytes sent as they are. */
  bytes: Buffer;
  /**
   * After sending: 'read' waits for the answer (or the timeout); 'close' ends the connection at once (FIN)
   * and 'reset' aborts it (RST), both before any answer could come, so the server writes to a dead peer.
   */
  after: 'read' | 'close' | 'reset';
}

export interface MalformedResult {
  name: string;
  /** The status of the answer's status line (`HTTP/1.1 400 Bad Request`), null when none came. */
  status: number | null;
  /** The answer's first line (at most 200 characters), '' when nothing came. */
  answer: string;
  /**
   * How it ended: the server closed it ('closed') or reset it ('reset'); the server answered and kept it
   * open (HTTP keep-alive: 'answered', closed here ANSWERED_GRACE_MS after the answer's head); nothing ended
   * it within the timeout ('timeout', closed here then); this side closed it on purpose ('client'); the
   * connection was refused or failed ('refused', 'error').
   */
  end: 'closed' | 'reset' | 'answered' | 'timeout' | 'client' | 'refused' | 'error';
  ms: number;
}

const crlf = (...lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
const get = (target: string, ...headers: string[]) =>
  crlf(`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...headers);
const upgrade = (target: string) =>
  crlf(
    `GET ${target} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: not a base64 key!',
    'Sec-WebSocket-Version: 13',
  );

/**
 * The fixed list. Paths under this platform's routes (/hls/, /ll/, /parts/, /api/, /chat/, /watch/) reach
 * the handlers behind each server's first check; the absolute-form targets name loopback port 1 (nothing
 * listens there: a server that proxies such a target answers 502 at once instead of reaching anywhere).
 */
export function malformedRequests(): MalformedRequest[] {
  const read = (name: string, bytes: Buffer): MalformedRequest => ({ name, bytes, after: 'read' });
  return [
    read('bad percent-encoding', get('/%')),
    read('truncated UTF-8 percent-encoding', get('/%E0%A4%A')),
    read('bad percent-encoding under /hls/', get('/hls/%/master.m3u8')),
    read('bad percent-encoding under /ll/', get('/ll/%E0%A4%A/360p.m3u8?_HLS_msn=%')),
    read('bad percent-encoding under /parts/', get('/parts/%/1/360p/part_0.m4s')),
    read('bad percent-encoding in a query', get('/api/events?stream=%E0%A4%A')),
    read('bad percent-encoding under /chat/ and /watch/', get('/watch/%/../chat/%')),
    read('absolute-form with an invalid port', get('http://a:b/')),
    read('absolute-form with an unclosed IPv6 host', get('http://[::1/')),
    read('absolute-form to another host', get('http://127.0.0.1:1/hls/x/master.m3u8')),
    read('scheme-relative target', get('//127.0.0.1:1/ll/x/master.m3u8')),
    read('asterisk-form', crlf('OPTIONS * HTTP/1.1', 'Host: 127.0.0.1', 'Connection: close')),
    read('dot segments', get('/hls/../../../../etc/passwd')),
    read('encoded dot segments', get('/hls/%2e%2e/%2e%2e/x/..%2f..%2fetc%2fpasswd')),
    read('64 KiB URL', get(`/hls/${'a'.repeat(64 * 1024)}`)),
    read('bad method', crlf('BR{W / HTTP/1.1', 'Host: 127.0.0.1')),
    read('header without a colon', get('/healthz', 'NoColonHere')),
    read('bad content-length', crlf('POST /api/chat/token HTTP/1.1', 'Host: 127.0.0.1', 'Content-Length: x')),
    read('binary request line', Buffer.concat([randomBytes(1024), Buffer.from('\r\n\r\n')])),
    {
      name: 'closed mid-headers',
      bytes: Buffer.from('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Cut: ', 'latin1'),
      after: 'close',
    },
    read('WebSocket upgrade to a bogus path with a bad key', upgrade('/%/nowhere')),
    read('WebSocket upgrade to a room path with a bad key', upgrade('/chat/demo')),
    { name: 'WebSocket upgrade to a bogus path, then reset', bytes: upgrade('/nowhere'), after: 'reset' },
  ];
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
/** A server that answered and keeps the connection (keep-alive) gets this long to close it anyway. */
const ANSWERED_GRACE_MS = 100;

function sendOne(
  port: number,
  host: string,
  request: MalformedRequest,
  timeoutMs: number,
): Promise<MalformedResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let end: MalformedResult['end'] | undefined;
    const socket = connect({ port, host });
    const timer = setTimeout(() => {
      end ??= 'timeout';
      socket.destroy();
    }, timeoutMs);
    let answered: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (received.length < 4096) received = Buffer.concat([received, chunk]);
      if (
        !answered &&
        /^HTTP\/1\.[01] \d{3}/.test(received.toString('latin1')) &&
        received.includes('\r\n\r\n')
      )
        answered = setTimeout(() => {
          end ??= 'answered';
          socket.destroy();
        }, ANSWERED_GRACE_MS);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      end ??=
        error.code === 'ECONNREFUSED'
          ? 'refused'
          : error.code === 'ECONNRESET' || error.code === 'EPIPE'
            ? 'reset'
            : 'error';
    });
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(answered);
      const answer = received.toString('latin1').split('\r\n')[0]?.slice(0, 200) ?? '';
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1];
      resolve({
        name: request.name,
        status: status ? Number(status) : null,
        answer,
        end: end ?? 'closed',
        ms: Date.now() - started,
      });
    });
    socket.once('connect', () => {
      socket.write(request.bytes, () => {
        if (request.after === 'close') {
          end ??= 'client';
          socket.end();
          socket.destroy();
        } else if (request.after === 'reset') {
          end ??= 'client';
          socket.resetAndDestroy();
        }
      });
    });
  });
}

/**
 * Sends every request of `malformedRequests()` to `port`, each on its own connection, all at once, and
 * resolves with what each got (whatever it was, or nothing) within about `timeoutMs` (default 1 s). Never
 * rejects. Loopback only: this is a test tool, not a scanner.
 */
export async function sendMalformedRequests(
  port: number,
  host = '127.0.0.1',
  { timeoutMs = 1000 }: { timeoutMs?: number } = {},
): Promise<MalformedResult[]> {
  if (!LOOPBACK.test(host)) throw new Error(`sendMalformedRequests: ${host} is not a loopback address`);
  return Promise.all(malformedRequests().map((request) => sendOne(port, host, request, timeoutMs)));
}
