// Real chat processes against a real nats-server, on free ports; tokens minted with the same secret.
import { randomBytes } from 'node:crypto';
import type { ChatRole } from '@live/contracts';
import { type Child, freePort, type NatsCluster, type NatsServer, startServiceProcess } from '@live/testing';
import { Tokens } from '../src/auth/tokens.js';

export const SECRET = randomBytes(32).toString('hex');
export const tokens = new Tokens(SECRET, 3600);

export interface ChatProcess {
  child: Child;
  port: number;
  opsPort: number;
  url(room: string): string;
  lines: string[];
}

/** A chat process on one nats-server, or on a cluster (NATS_URL lists every node, as in production). */
export async function startChat(
  nats: NatsServer | NatsCluster,
  env: Record<string, string> = {},
): Promise<ChatProcess> {
  const port = await freePort();
  const opsPort = await freePort();
  const lines: string[] = [];
  const child = await startServiceProcess({
    service: 'chat',
    opsPort,
    env: {
      NATS_URL: 'urls' in nats ? nats.urls.join(',') : nats.url,
      CHAT_PORT: String(port),
      CHAT_OPS_PORT: String(opsPort),
      CHAT_TOKEN_SECRET: SECRET,
      CHAT_NODE_REPORT_MS: '250',
      ...env,
    },
    onLine: (line) => lines.push(line),
  });
  return { child, port, opsPort, url: (room) => `ws://127.0.0.1:${port}/chat/${room}`, lines };
}

export async function token(
  userId: string,
  room: string,
  role: ChatRole = 'viewer',
  extra: { ttlSeconds?: number; name?: string } = {},
): Promise<string> {
  return (await tokens.mint({ userId, name: extra.name ?? userId, role, rooms: [room], ...extra })).token;
}
