// Talking to the gateway: JSON calls with the server's error message surfaced as is, server-sent event
// streams (the browser's EventSource reconnects by itself), and the admin sign-in.
import type { ErrorBody, PageConfig } from '../../src/shared/api.js';
import { byId, h } from './dom.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { credentials: 'same-origin' });
  if (!res.ok) throw new ApiError(res.status, await errorText(res));
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new ApiError(res.status, await errorText(res));
  return (await res.json()) as T;
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return (JSON.parse(text) as ErrorBody).error ?? text;
  } catch {
    return text || res.statusText;
  }
}

export const loadConfig = () => getJson<PageConfig>('/api/config');

/** Opens an event stream; `handlers` by event name get the parsed JSON. Returns the EventSource. */
export function subscribe(url: string, handlers: Record<string, (data: never) => void>): EventSource {
  const source = new EventSource(url);
  for (const [event, handler] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => handler(JSON.parse((e as MessageEvent<string>).data) as never));
  }
  return source;
}

/**
 * Studio and ops need the admin token in production. When the gateway says this browser is not admin,
 * a small form asks for it once; the gateway answers with an HttpOnly cookie, and the page reloads.
 */
export function requireSignIn(config: PageConfig, mount: HTMLElement): boolean {
  if (config.admin) return true;
  const input = h('input', {
    type: 'password',
    id: 'admin-token',
    autocomplete: 'current-password',
    required: true,
  });
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card login', id: 'login' },
    h('h2', {}, 'Sign in'),
    h('p', {}, 'This page needs the admin token (WEB_ADMIN_TOKEN).'),
    h('label', {}, 'Admin token ', input),
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    postJson('/api/login', { token: input.value })
      .then(() => location.reload())
      .catch((e: Error) => {
        error.textContent = e.message;
      });
  });
  mount.replaceChildren(form);
  mount.hidden = false;
  byId<HTMLInputElement>('admin-token').focus();
  return false;
}
