// The chat's HTTP face: WebSocket upgrades at /chat/<room>, /healthz and /readyz for load balancers on the
// same port, and (local mode only) POST /api/chat/token for guest tokens. Holds this pod's connections:
// admission (max connections, draining), shedding a few to rebalance, and a spread-out goodbye on shutdown.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { CHAT_CLOSE, type ChatSanction, type RoomSettings, STREAM_ID_PATTERN } from '@live/contracts';
import {
  type HttpListener,
  listenHttp,
  logMalformedRequest,
  parseRequestTarget,
  requestTarget,
} from '@live/runtime';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { SanctionKind } from '../moderation/moderation.js';
import { ChatConnection } from './connection.js';
import type { ChatContext } from './context.js';

export interface ChatServerOptions {
  context: Omit<ChatContext, 'connectionJoined' | 'connectionClosed'>;
  logger: Logger;
  /** null when this pod should get new connections, else why not (load-aware admission). */
  notReadyReason: () => string | null;
  onCountChange: (connections: number) => void;
}

const ROOM_PATH = /^\/chat\/([^/?#]+)\/?$/;
const GUEST_BODY_LIMIT = 1024;

export class ChatServer {
  readonly connections = new Set<ChatConnection>();
  private readonly wss: WebSocketServer;
  private readonly context: ChatContext;
  private listener: HttpListener | undefined;
  private accepting = true;

  constructor(private readonly options: ChatServerOptions) {
    const { config } = options.context;
    this.wss = new WebSocketServer({
      noServer: true,
      // Bigger frames close the connection with 1009 before they are buffered.
      maxPayload: config.CHAT_MAX_FRAME_BYTES,
      // Compression would cost a zlib context (~300 KB) per connection and CPU per delivery; chat frames are small.
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.context = {
      ...options.context,
      connectionJoined: () => undefined,
      connectionClosed: (connection) => {
        this.connections.delete(connection);
        options.onCountChange(this.connections.size);
      },
    };
  }

  get port(): number {
    return this.listener?.port ?? 0;
  }

  async listen(): Promise<number> {
    const { config } = this.options.context;
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.listener = await listenHttp(server, config.CHAT_PORT, config.CHAT_BIND, this.options.logger);
    return this.listener.port;
  }

  /** Connections of one user in one room on this pod. */
  private members(room: string, userId?: string): ChatConnection[] {
    const served = this.context.rooms.served(room);
    if (!served) return [];
    const all = [...served.members] as ChatConnection[];
    return userId === undefined ? all : all.filter((c) => c.userId === userId);
  }

  /** Moderation, as every pod sees it: kick the banned, tell the timed-out, show new settings. */
  sanctionChanged(kind: SanctionKind, room: string, userId: string, sanction: ChatSanction | null): void {
    for (const c of this.members(room, userId)) {
      if (kind === 'ban' && sanction) {
        c.error('banned', 'you are banned from this room', sanction.until ? { until: sanction.until } : {});
        c.close(CHAT_CLOSE.banned, 'banned');
      } else {
        c.send({
          type: 'notice',
          kind: sanction ? 'timeout' : 'unban',
          userId,
          ...(sanction ? { until: sanction.until } : {}),
          ...(sanction?.reason ? { reason: sanction.reason } : {}),
        });
      }
    }
  }

  settingsChanged(room: string, settings: RoomSettings): void {
    for (const c of this.members(room)) c.send({ type: 'notice', kind: 'settings', settings });
  }

  /** Rebalancing: tell `count` random clients to reconnect (the load balancer sends them to a ready pod). */
  shed(count: number): number {
    const joined = [...this.connections].filter((c) => c.joined);
    const picked = shuffle(joined).slice(0, count);
    const { config } = this.options.context;
    // Spread over the second so the other pods see a trickle, not a burst.
    picked.forEach((c, i) => {
      setTimeout(
        () => c.reconnect('rebalance', jitter(config.CHAT_RECONNECT_MIN_MS, config.CHAT_RECONNECT_MAX_MS)),
        (i * 1000) / picked.length,
      );
    });
    return picked.length;
  }

  /** SIGTERM: take no one new, tell everyone to reconnect elsewhere over `spreadMs`, wait until they left. */
  async shutdown(spreadMs: number): Promise<void> {
    this.accepting = false;
    const { config } = this.options.context;
    const all = shuffle([...this.connections]);
    const left = Promise.all(
      all.map((c) => new Promise<void>((resolve) => c.ws.once('close', () => resolve()))),
    );
    all.forEach((c, i) => {
      setTimeout(
        () => c.reconnect('shutdown', jitter(config.CHAT_RECONNECT_MIN_MS, config.CHAT_RECONNECT_MAX_MS)),
        (i * spreadMs) / all.length,
      );
    });
    // A client that never answers the close handshake is cut after the spread plus a margin.
    const cutoff = setTimeout(() => {
      for (const c of this.connections) c.ws.terminate();
    }, spreadMs + 2000);
    await left;
    clearTimeout(cutoff);
    await this.listener?.close();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const target = requestTarget(req, res, this.options.logger);
    if (!target) return;
    const path = target.pathname;
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (req.method === 'GET' && path === '/readyz') {
      const reason = this.accepting ? this.options.notReadyReason() : 'draining';
      if (reason === null) res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      else res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${reason}\n`);
    } else if (path === '/api/chat/token' && this.options.context.config.CHAT_GUEST_TOKENS) {
      this.guestToken(req, res);
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: chat WebSockets are at /chat/<room>\n');
    }
  }

  /** Local mode: the watch page asks for a guest viewer token for one room. */
  private guestToken(req: IncomingMessage, res: ServerResponse): void {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type' };
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors, 'access-control-allow-methods': 'POST' }).end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, cors).end();
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > GUEST_BODY_LIMIT) req.destroy();
    });
    req.on('end', () => {
      let room: unknown;
      try {
        room = (JSON.parse(body) as { room?: unknown }).room;
      } catch {
        room = undefined;
      }
      if (typeof room !== 'string' || !STREAM_ID_PATTERN.test(room)) {
        res
          .writeHead(400, { ...cors, 'content-type': 'application/json' })
          .end(JSON.stringify({ error: 'expected {"room": "<stream id>"}' }));
        return;
      }
      this.options.context.tokens
        .mintGuest(room)
        .then((t) =>
          res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify(t)),
        )
        .catch((error: Error) => res.writeHead(500, cors).end(error.message));
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { config } = this.options.context;
    // Node hands over an upgrade's socket without an error listener: a client that resets it while it is
    // refused below (a write to a reset socket) ended the process with ECONNRESET. `ws` has its own.
    const onError = () => socket.destroy();
    socket.on('error', onError);
    const refuse = (status: string, reason: string) => {
      this.options.context.metrics.refused.inc({ reason });
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${reason}\n`);
    };
    const target = parseRequestTarget(req.url);
    if ('error' in target) {
      logMalformedRequest(this.options.logger, req, target.error);
      refuse('400 Bad Request', 'malformed_request');
      return;
    }
    const room = ROOM_PATH.exec(target.pathname)?.[1];
    if (!room || !STREAM_ID_PATTERN.test(room)) refuse('404 Not Found', 'no_such_room_path');
    else if (!this.accepting) refuse('503 Service Unavailable', 'draining');
    else if (this.connections.size >= config.CHAT_MAX_CONNECTIONS)
      refuse('503 Service Unavailable', 'max_connections');
    else {
      socket.off('error', onError);
      this.accept(req, socket, head, room);
    }
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, room: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const connection = new ChatConnection(ws, room, this.context, this.options.logger);
      this.connections.add(connection);
      this.options.onCountChange(this.connections.size);
    });
  }
}

function jitter(min: number, max: number): number {
  return Math.round(min + Math.random() * Math.max(0, max - min));
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
