// One WebSocket client: the protocol of docs/architecture.md (Chat) from `join` on, the checks every frame
// passes (capabilities, sanctions, slow mode, rate limits, length, review hook, word filter), and delivery
// with a bounded send buffer. Every refusal is a typed `error` frame; nothing a client sends can throw here.

import type { Socket } from 'node:net';
import { describeIssues } from '@live/bus';
import {
  CHAT_CLOSE,
  type ChatCapability,
  type ChatErrorCode,
  type ChatTokenClaims,
  type ClientFrame,
  clientFrame,
  type ServerFrame,
} from '@live/contracts';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import { TokenError, tokenAllowsRoom } from '../auth/tokens.js';
import type { OutgoingFrame, RetainedEvent, Room, RoomMember } from '../rooms/room.js';
import type { ChatContext } from './context.js';

const STRIKE_WINDOW_MS = 60_000;

export class ChatConnection implements RoomMember {
  lastSent = 0;
  claims: ChatTokenClaims | undefined;
  room: Room | undefined;
  private joining = false;
  private closed = false;
  private strikes = 0;
  private strikeWindowStart = 0;
  private loggedInvalid = false;
  /** A client's own frames are handled one after another, so its messages keep the order it sent them in. */
  private queue: Promise<void> = Promise.resolve();
  private joinTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly roomId: string,
    private readonly ctx: ChatContext,
    private readonly logger: Logger,
  ) {
    this.joinTimer = setTimeout(
      () => this.close(CHAT_CLOSE.joinTimeout, 'join timeout'),
      ctx.config.CHAT_JOIN_TIMEOUT_MS,
    );
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (error) => this.logger.debug({ err: error.message }, 'websocket error'));
  }

  get userId(): string {
    return this.claims?.sub ?? '';
  }

  get joined(): boolean {
    return this.room !== undefined && !this.closed;
  }

  /** Room events: the stored bytes as they are. */
  deliver(event: RetainedEvent): void {
    this.lastSent = event.seq;
    this.write(event.frame);
  }

  deliverFrame(frame: OutgoingFrame, lastSeq: number): void {
    this.lastSent = lastSeq;
    this.write(frame.text, frame.wire);
  }

  send(frame: ServerFrame): void {
    this.write(JSON.stringify(frame));
  }

  /** Every frame goes through here: a client whose unread data passes the bound is dropped, not waited for. */
  private write(data: Buffer | string, wire?: Buffer): void {
    if (this.closed) return;
    if (this.ws.bufferedAmount > this.ctx.config.CHAT_MAX_BUFFERED_BYTES) {
      this.ctx.metrics.closed.inc({ reason: 'slow_consumer' });
      this.ctx.logOnce(
        'slow_consumer',
        { user: this.userId, room: this.roomId },
        'dropped a client that does not read',
      );
      this.closed = true;
      // terminate, not close: a close frame would queue behind the data the client is not reading.
      this.ws.terminate();
      return;
    }
    // Fan-out of a room frame: the same framed bytes straight to the socket (one write, no per-client
    // framing). ws (8.x, no compression here) writes its own frames to the same socket synchronously, so
    // the order of frames is kept. If ws ever stops exposing its socket, ws.send is the fallback.
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (wire && socket && this.ws.readyState === WebSocket.OPEN) socket.write(wire);
    else this.ws.send(data, { binary: false });
  }

  error(
    code: ChatErrorCode,
    message: string,
    extra: Partial<Extract<ServerFrame, { type: 'error' }>> = {},
  ): void {
    this.send({ type: 'error', code, message, ...extra });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.metrics.closed.inc({ reason: reason.replace(/\s+/g, '_') });
    this.ws.close(code, reason);
  }

  /** Tells the client to come back (any pod) after a delay, resuming from its last seq; then closes. */
  reconnect(reason: 'rebalance' | 'shutdown', delayMs: number): void {
    this.send({ type: 'reconnect', delayMs, reason });
    this.close(CHAT_CLOSE.reconnect, reason);
  }

  private onClose(): void {
    this.closed = true;
    clearTimeout(this.joinTimer);
    if (this.room) {
      this.room.members.delete(this);
      this.ctx.rooms.release(this.room);
    }
    this.ctx.connectionClosed(this);
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (isBinary) {
      this.strike('binary frames are not part of the chat protocol: send JSON text');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      this.strike('not JSON');
      return;
    }
    const decoded = clientFrame.safeParse(json);
    if (!decoded.success) {
      this.strike(`not a chat message: ${describeIssues(decoded.error)}`);
      return;
    }
    const frame = decoded.data;
    this.queue = this.queue
      .then(() => this.handle(frame))
      .catch((error: unknown) => {
        this.logger.error({ err: (error as Error).message, type: frame.type }, 'frame handling failed');
        this.error('unavailable', 'the chat could not handle that; try again');
      });
  }

  /** An invalid frame or a refused message: answered, counted, and after too many the client is dropped. */
  private strike(message: string, code: ChatErrorCode = 'invalid', extra = {}): void {
    const now = Date.now();
    if (now - this.strikeWindowStart > STRIKE_WINDOW_MS) {
      this.strikeWindowStart = now;
      this.strikes = 0;
    }
    this.strikes++;
    this.ctx.metrics.refused.inc({ reason: code });
    if (code === 'invalid' && !this.loggedInvalid) {
      this.loggedInvalid = true;
      this.logger.info({ user: this.userId || undefined, reason: message }, 'invalid frame from client');
    }
    this.error(code, message, extra);
    if (this.strikes > this.ctx.config.CHAT_FLOOD_STRIKES) {
      this.ctx.logOnce(
        'flooding',
        { user: this.userId, room: this.roomId },
        'disconnected a flooding client',
      );
      this.close(CHAT_CLOSE.flooding, 'flooding');
    }
  }

  private can(cap: ChatCapability): boolean {
    return this.claims?.caps.includes(cap) ?? false;
  }

  private async handle(frame: ClientFrame): Promise<void> {
    if (this.closed) return;
    if (frame.type === 'join') return this.join(frame.token, frame.since);
    const room = this.room;
    if (!room || !this.claims) {
      this.strike(this.joining ? 'wait for welcome before sending' : 'send join first');
      return;
    }
    switch (frame.type) {
      case 'send':
        return this.sendMessage(room, this.claims, frame.text, frame.cid);
      case 'history': {
        const { events, complete } = room.history(frame.limit ?? this.ctx.config.CHAT_HISTORY, frame.before);
        this.send({ type: 'history', events: events.map((e) => e.event), complete });
        return;
      }
      case 'delete': {
        const target = room.find(frame.seq);
        if (target?.event.type !== 'msg' || target.deleted) {
          this.error('not_found', `no message ${frame.seq} in this room's history`);
          return;
        }
        if (!this.can('delete') && target.event.user.id !== this.userId) {
          this.error('forbidden', 'you may delete only your own messages');
          return;
        }
        const by = this.userId;
        const seq = await room.write((next, ts) => ({
          type: 'deleted',
          seq: next,
          ts,
          target: frame.seq,
          by,
        }));
        this.send({ type: 'ack', seq });
        return;
      }
      case 'timeout':
      case 'ban':
        if (!this.can(frame.type)) {
          this.error('forbidden', `your token does not allow ${frame.type}`);
          return;
        }
        if (frame.userId === this.userId) {
          this.error('forbidden', `you cannot ${frame.type} yourself`);
          return;
        }
        await this.ctx.moderation.sanctionUser(
          frame.type,
          room.id,
          frame.userId,
          this.userId,
          frame.seconds,
          frame.reason,
        );
        this.send({ type: 'ack', seq: room.newestSeq });
        return;
      case 'unban':
        if (!this.can('ban')) {
          this.error('forbidden', 'your token does not allow unban');
          return;
        }
        await this.ctx.moderation.lift(room.id, frame.userId);
        this.send({ type: 'ack', seq: room.newestSeq });
        return;
      case 'slow':
      case 'filter':
        if (!this.can('room')) {
          this.error('forbidden', 'your token does not allow changing room settings');
          return;
        }
        await this.ctx.moderation.updateSettings(
          room.id,
          frame.type === 'slow' ? { slowSeconds: frame.seconds } : { words: frame.words },
        );
        this.send({ type: 'ack', seq: room.newestSeq });
        return;
    }
  }

  private async join(token: string, since: number | undefined): Promise<void> {
    if (this.room || this.joining) {
      this.strike('already joined');
      return;
    }
    this.joining = true;
    // CHAT_JOIN_TIMEOUT_MS is the client's time to send `join`, not the server's to answer it (the room's
    // first join replays its history from JetStream: round trips a busy NATS can make slow).
    clearTimeout(this.joinTimer);
    let claims: ChatTokenClaims;
    try {
      claims = await this.ctx.tokens.verify(token);
    } catch (error) {
      const message = error instanceof TokenError ? error.message : 'token refused';
      this.ctx.metrics.refused.inc({ reason: 'unauthorized' });
      this.error('unauthorized', message);
      this.close(CHAT_CLOSE.unauthorized, 'unauthorized');
      return;
    }
    if (!tokenAllowsRoom(claims, this.roomId)) {
      this.ctx.metrics.refused.inc({ reason: 'unauthorized' });
      this.error('unauthorized', `this token is not valid for room ${this.roomId}`);
      this.close(CHAT_CLOSE.unauthorized, 'unauthorized');
      return;
    }
    const ban = this.ctx.moderation.sanction('ban', this.roomId, claims.sub);
    if (ban) {
      this.ctx.metrics.refused.inc({ reason: 'banned' });
      this.error('banned', 'you are banned from this room', ban.until ? { until: ban.until } : {});
      this.close(CHAT_CLOSE.banned, 'banned');
      return;
    }
    const room = await this.ctx.rooms.acquire(this.roomId);
    this.claims = claims;
    if (this.closed) {
      this.ctx.rooms.release(room);
      return;
    }
    // From here to members.add nothing awaits, so no event can slip between the replay and live delivery.
    const newest = room.newestSeq;
    this.send({
      type: 'welcome',
      room: room.id,
      user: { id: claims.sub, name: claims.name, role: claims.role, caps: claims.caps },
      seq: newest,
      settings: this.ctx.moderation.roomSettings(room.id),
      oldest: room.oldestSeq,
    });
    if (since === undefined) {
      const { events, complete } = room.history(this.ctx.config.CHAT_HISTORY);
      this.send({ type: 'history', events: events.map((e) => e.event), complete });
      this.lastSent = newest;
    } else {
      this.lastSent = since;
      if (since + 1 < room.oldestSeq && since < newest) {
        this.send({ type: 'gap', from: since + 1, to: room.oldestSeq - 1 });
      }
      for (const event of room.eventsAfter(since)) this.deliver(event);
    }
    this.room = room;
    room.members.add(this);
    this.joining = false;
    this.ctx.connectionJoined(this);
  }

  private async sendMessage(room: Room, claims: ChatTokenClaims, text: string, cid?: string): Promise<void> {
    const ids = cid === undefined ? {} : { cid };
    if (!this.can('send')) {
      this.error('forbidden', 'your token is read-only', ids);
      return;
    }
    const length = [...text].length;
    if (length > this.ctx.config.CHAT_MAX_MESSAGE_CHARS) {
      this.strike(
        `message too long: ${length} characters, at most ${this.ctx.config.CHAT_MAX_MESSAGE_CHARS}`,
        'too_long',
        ids,
      );
      return;
    }
    if (text.trim() === '') {
      this.strike('empty message', 'invalid', ids);
      return;
    }
    const now = Date.now();
    const timeout = this.ctx.moderation.sanction('timeout', room.id, claims.sub, now);
    if (timeout) {
      this.error('timed_out', 'a moderator silenced you for a while', {
        ...ids,
        ...(timeout.until ? { until: timeout.until } : {}),
      });
      return;
    }
    const moderator = this.can('delete');
    const slowWait = moderator ? 0 : this.ctx.limits.slowMode(room.id, claims.sub, now);
    if (slowWait > 0) {
      this.error('slow_mode', 'slow mode is on', { ...ids, retryMs: slowWait });
      return;
    }
    const userWait = this.ctx.limits.user(room.id, claims.sub, now);
    if (userWait > 0) {
      this.strike('you are sending too fast', 'rate_limited', { ...ids, retryMs: userWait });
      return;
    }
    const roomWait = this.ctx.limits.room(room.id, now);
    if (roomWait > 0) {
      // The room as a whole is too busy: not this client's fault, so no strike.
      this.ctx.metrics.refused.inc({ reason: 'rate_limited' });
      this.error('rate_limited', 'this room is too busy right now', { ...ids, retryMs: roomWait });
      return;
    }
    const author = { id: claims.sub, name: claims.name, role: claims.role };
    const verdict = await this.ctx.review(room.id, author, text);
    if (verdict.action === 'deny') {
      this.ctx.metrics.refused.inc({ reason: 'denied' });
      this.error('denied', verdict.reason ?? 'message refused by review', ids);
      return;
    }
    const final = this.ctx.moderation.filter(room.id, verdict.action === 'rewrite' ? verdict.text : text);
    let seq: number;
    try {
      seq = await room.write((next, ts) => ({ type: 'msg', seq: next, ts, user: author, text: final }));
    } catch (error) {
      this.ctx.logOnce('write_failed', { room: room.id, err: (error as Error).message }, 'chat write failed');
      this.error('unavailable', 'the chat could not store your message; try again', ids);
      return;
    }
    if (!moderator) this.ctx.limits.sent(room.id, claims.sub, now);
    this.ctx.metrics.messages.inc();
    this.send({ type: 'ack', seq, ...ids });
  }
}
