// The chat beside the video: a WebSocket client of the chat protocol (docs/architecture.md, Chat) that
// resumes from its last seq on every reconnect, and the panel that shows messages as text only, holds them
// back until the video reaches their time (a toggle turns that off), offers moderators their actions and
// turns the server's refusals into polite sentences.
import type { ChatTokenReply } from '../../src/shared/api.js';
import { fill, h } from './dom.js';

// biome-ignore lint/suspicious/noExplicitAny: frames are JSON read field by field, as the protocol documents
type Frame = Record<string, any>;

interface Author {
  id: string;
  name: string;
  role: string;
}

interface ChatMessage {
  seq: number;
  ts: number;
  user: Author;
  text: string;
}

const CLOSE = { reconnect: 4000, unauthorized: 4001, banned: 4003, flooding: 4008 };

export interface ChatConnectionEvents {
  onWelcome(user: Author & { caps: string[] }): void;
  onMessage(message: ChatMessage, live: boolean): void;
  onDeleted(target: number): void;
  onError(frame: Frame): void;
  onNotice(frame: Frame): void;
  onAck(cid: string, seq: number): void;
  onStatus(status: string, connected: boolean): void;
  /** The server will not take us back (banned, token refused twice). */
  onGone(reason: string): void;
}

/** One chat connection that keeps itself connected and resumes exactly where it left off. */
export class ChatConnection {
  private ws: WebSocket | null = null;
  private lastSeq: number | null = null;
  private attempts = 0;
  private reconnectDelay: number | null = null;
  private timer: number | undefined;
  private stopped = false;
  private token: ChatTokenReply | null = null;
  private cids = 0;

  constructor(
    private readonly url: string,
    private readonly fetchToken: () => Promise<ChatTokenReply>,
    private readonly events: ChatConnectionEvents,
  ) {}

  get user(): ChatTokenReply | null {
    return this.token;
  }

  async start(): Promise<void> {
    this.token = await this.fetchToken();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }

  /** Sends a message; returns its client id (the ack or error carries it). */
  send(text: string): string | null {
    if (this.ws?.readyState !== WebSocket.OPEN) return null;
    const cid = `c${++this.cids}`;
    this.ws.send(JSON.stringify({ type: 'send', text, cid }));
    return cid;
  }

  action(frame: Frame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  private connect(): void {
    if (this.stopped || !this.token) return;
    this.events.onStatus(this.lastSeq === null ? 'connecting...' : 'reconnecting...', false);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.reconnectDelay = null;
    ws.onopen = () => {
      // Resume: every event after the last one we saw, so a reconnect loses and repeats nothing.
      ws.send(
        JSON.stringify({
          type: 'join',
          token: this.token?.token,
          ...(this.lastSeq === null ? {} : { since: this.lastSeq }),
        }),
      );
    };
    ws.onmessage = (e) => {
      const parsed = JSON.parse(String(e.data)) as Frame | Frame[];
      for (const frame of Array.isArray(parsed) ? parsed : [parsed]) this.onFrame(frame);
    };
    ws.onclose = (e) => this.onClose(e.code);
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case 'welcome':
        this.attempts = 0;
        this.events.onWelcome(f.user);
        this.events.onStatus(`connected as ${f.user.name}`, true);
        if (this.lastSeq === null) this.lastSeq = f.seq;
        break;
      case 'history':
        for (const event of f.events as Frame[]) this.onRoomEvent(event, false);
        break;
      case 'msg':
      case 'deleted':
        this.onRoomEvent(f, true);
        break;
      case 'gap':
        this.events.onNotice({ kind: 'gap', from: f.from, to: f.to });
        break;
      case 'ack':
        this.events.onAck(f.cid, f.seq);
        break;
      case 'error':
        this.events.onError(f);
        break;
      case 'notice':
        this.events.onNotice(f);
        break;
      case 'reconnect':
        this.reconnectDelay = f.delayMs;
        break;
    }
  }

  private onRoomEvent(f: Frame, live: boolean): void {
    if (this.lastSeq === null || f.seq > this.lastSeq) this.lastSeq = f.seq;
    if (f.type === 'msg') this.events.onMessage(f as ChatMessage, live);
    else if (f.type === 'deleted') this.events.onDeleted(f.target);
  }

  private onClose(code: number): void {
    this.ws = null;
    if (this.stopped) return;
    if (code === CLOSE.banned) {
      this.events.onGone('You have been removed from this chat.');
      return;
    }
    let delay: number;
    if (code === CLOSE.reconnect && this.reconnectDelay !== null) {
      // The pod asked us to move (rebalance or shutdown), with a spread-out delay.
      delay = this.reconnectDelay;
    } else if (code === CLOSE.unauthorized) {
      if (this.attempts++ > 1) {
        this.events.onGone('Chat is not available right now.');
        return;
      }
      // The token expired or was refused: a fresh one, then back in.
      delay = 500;
      this.fetchToken()
        .then((t) => {
          this.token = t;
        })
        .catch(() => undefined);
    } else {
      // Network trouble or a pod that went away: back off (with jitter) up to 10 s.
      const base = code === CLOSE.flooding ? 5000 : Math.min(10_000, 500 * 2 ** this.attempts++);
      delay = base / 2 + Math.random() * (base / 2);
    }
    this.events.onStatus('reconnecting...', false);
    this.timer = window.setTimeout(() => this.connect(), delay);
  }
}

/** What the server said no about, as a person would say it. */
export function politeError(f: Frame): string {
  const seconds = (ms: number | undefined) => Math.max(1, Math.ceil((ms ?? 1000) / 1000));
  switch (f.code) {
    case 'rate_limited':
      return `You're sending messages a little fast. You can send again in ${seconds(f.retryMs)} s.`;
    case 'slow_mode':
      return `Slow mode is on. You can send again in ${seconds(f.retryMs)} s.`;
    case 'timed_out':
      return `A moderator paused your chat${f.until ? ` until ${new Date(f.until).toLocaleTimeString()}` : ''}. You can still read along.`;
    case 'banned':
      return 'You can no longer chat in this room.';
    case 'too_long':
      return 'That message is too long. Please shorten it.';
    case 'denied':
      return "That message wasn't allowed here.";
    case 'forbidden':
      return "You can't do that in this room.";
    case 'unavailable':
      return 'Chat is having trouble right now. Please try again in a moment.';
    default:
      return String(f.message ?? 'Something went wrong.');
  }
}

export interface ChatPanelOptions {
  /** The frame on screen's wall-clock time, or null when no video plays (then nothing is held). */
  videoClock: () => number | null;
}

/** Longest a message is held for the video: beyond this the clocks disagree, and it is shown anyway. */
const MAX_HOLD_MS = 30_000;

export class ChatPanel {
  private readonly list: HTMLUListElement;
  private readonly notice: HTMLParagraphElement;
  private readonly status: HTMLSpanElement;
  private readonly input: HTMLInputElement;
  private readonly sync: HTMLInputElement;
  private readonly held: { message: ChatMessage; receivedAt: number }[] = [];
  private readonly pendingSends = new Map<string, string>();
  private caps: string[] = [];
  private me: string | null = null;
  private connection: ChatConnection | null = null;

  constructor(
    readonly root: HTMLElement,
    private readonly options: ChatPanelOptions,
  ) {
    this.list = h('ul', { id: 'chat-messages', class: 'messages', 'aria-live': 'polite' });
    this.notice = h('p', { id: 'chat-notice', class: 'notice', role: 'status' });
    this.status = h('span', { id: 'chat-status' }, 'not connected');
    this.input = h('input', {
      id: 'chat-input',
      maxlength: '500',
      placeholder: 'Say something',
      autocomplete: 'off',
    });
    this.sync = h('input', { id: 'chat-sync', type: 'checkbox', checked: true });
    const form = h(
      'form',
      { id: 'chat-form', class: 'chat-form' },
      this.input,
      h('button', { type: 'submit', id: 'chat-send' }, 'Send'),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.sync.addEventListener('change', () => this.release());
    fill(
      root,
      h(
        'header',
        { class: 'chat-head' },
        h('strong', {}, 'Chat'),
        ' ',
        this.status,
        h(
          'label',
          { class: 'sync', title: 'Hold messages until the video shows the moment they were sent' },
          this.sync,
          ' in step with video',
        ),
      ),
      this.list,
      this.notice,
      form,
    );
    window.setInterval(() => this.release(), 200);
  }

  attach(connection: ChatConnection): void {
    this.connection = connection;
  }

  get events(): ChatConnectionEvents {
    return {
      onWelcome: (user) => {
        this.caps = user.caps;
        this.me = user.id;
        this.root.dataset.role = user.role;
        this.root.dataset.connected = 'true';
      },
      onMessage: (message) => {
        // Our own messages show at once: we know what we said and when.
        if (message.user.id === this.me || !this.sync.checked) this.show(message);
        else this.held.push({ message, receivedAt: Date.now() });
        this.release();
      },
      onDeleted: (target) => {
        const at = this.held.findIndex((x) => x.message.seq === target);
        if (at >= 0) this.held.splice(at, 1);
        this.list.querySelector(`li[data-seq="${target}"]`)?.remove();
      },
      onError: (f) => {
        this.say(politeError(f));
        const text = f.cid ? this.pendingSends.get(f.cid) : undefined;
        if (text !== undefined && this.input.value === '') this.input.value = text;
      },
      onAck: (cid) => {
        this.pendingSends.delete(cid);
      },
      onNotice: (f) => {
        if (f.kind === 'gap') this.say('Some messages from while you were away are no longer available.');
        else if (f.kind === 'timeout') this.say(politeError({ code: 'timed_out', until: f.until }));
        else if (f.kind === 'unban') this.say('You can chat again.');
        else if (f.kind === 'settings')
          this.say(
            f.settings?.slowSeconds
              ? `Slow mode: one message every ${f.settings.slowSeconds} s.`
              : 'Room settings changed.',
          );
      },
      onStatus: (status, connected) => {
        this.status.textContent = status;
        this.root.dataset.connected = String(connected);
      },
      onGone: (reason) => {
        this.status.textContent = 'disconnected';
        this.root.dataset.connected = 'false';
        this.say(reason);
        this.input.disabled = true;
      },
    };
  }

  private say(text: string): void {
    this.notice.textContent = text;
  }

  private submit(): void {
    const text = this.input.value.trim();
    if (!text || !this.connection) return;
    const cid = this.connection.send(text);
    if (cid === null) {
      this.say('Not connected yet: your message was kept, try again in a moment.');
      return;
    }
    this.pendingSends.set(cid, text);
    this.input.value = '';
    this.say('');
  }

  /** Shows held messages whose time the video has reached (or all of them when not in step). */
  private release(): void {
    const clock = this.options.videoClock();
    const now = Date.now();
    this.root.dataset.held = String(this.held.length);
    while (this.held.length > 0) {
      const next = this.held[0] as { message: ChatMessage; receivedAt: number };
      const due =
        !this.sync.checked ||
        clock === null ||
        clock >= next.message.ts ||
        now - next.receivedAt > MAX_HOLD_MS;
      if (!due) break;
      this.held.shift();
      this.show(next.message);
    }
    this.root.dataset.held = String(this.held.length);
  }

  private show(m: ChatMessage): void {
    if (this.list.querySelector(`li[data-seq="${m.seq}"]`)) return;
    const li = h(
      'li',
      { 'data-seq': String(m.seq), 'data-user': m.user.id },
      h('span', { class: `author role-${m.user.role}` }, m.user.name),
      ' ',
      // Plain text: whatever the message holds (<img onerror>, <script>) is shown, never parsed.
      h('span', { class: 'text' }, m.text),
    );
    const mine = m.user.id === this.me;
    const tools = h('span', { class: 'mod-tools' });
    if (this.caps.includes('delete') || mine)
      tools.append(
        h(
          'button',
          {
            type: 'button',
            class: 'mod-delete',
            title: 'Delete this message',
            onclick: () => this.connection?.action({ type: 'delete', seq: m.seq }),
          },
          'delete',
        ),
      );
    if (!mine && this.caps.includes('timeout'))
      tools.append(
        h(
          'button',
          {
            type: 'button',
            class: 'mod-timeout',
            title: 'Silence for 10 minutes',
            onclick: () => this.connection?.action({ type: 'timeout', userId: m.user.id, seconds: 600 }),
          },
          'timeout',
        ),
      );
    if (!mine && this.caps.includes('ban'))
      tools.append(
        h(
          'button',
          {
            type: 'button',
            class: 'mod-ban',
            title: 'Ban from this room',
            onclick: () => this.connection?.action({ type: 'ban', userId: m.user.id }),
          },
          'ban',
        ),
      );
    if (tools.childElementCount > 0) li.append(' ', tools);
    // Keep the order of seq even when a held message is released after a newer own message.
    const after = [...this.list.children].find((c) => Number((c as HTMLElement).dataset.seq) > m.seq);
    this.list.insertBefore(li, after ?? null);
    while (this.list.children.length > 300) this.list.firstElementChild?.remove();
    this.list.scrollTop = this.list.scrollHeight;
  }
}
