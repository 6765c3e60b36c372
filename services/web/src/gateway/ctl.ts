// The operator endpoints the pages use, called exactly as the runbook does (live.ctl.*), through the bus's
// requestEndpoint (replies validated). A service's refusal keeps its status and message; silence or no
// responder becomes 503 with what is not answering, so the page can say so.
import { randomBytes } from 'node:crypto';
import { requestEndpoint, ServiceRefusedError } from '@live/bus';
import {
  type ChatRole,
  chatTokenReply,
  createKeyReply,
  revokeKeyReply,
  streamMoveReply,
  subjects,
  workerDrainReply,
} from '@live/contracts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { z } from 'zod';
import type { ChatTokenReply, KeyReply } from '../shared/api.js';
import { HttpError } from './http.js';

async function call<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  reply: S,
  who: string,
  timeoutMs = 5000,
): Promise<z.output<S>> {
  try {
    return await requestEndpoint(nc, subject, body, reply, timeoutMs);
  } catch (error) {
    if (error instanceof ServiceRefusedError)
      throw new HttpError(error.code >= 400 && error.code < 500 ? error.code : 502, error.message);
    const message = (error as Error).message;
    if (/no responders|timeout|TIMEOUT|503/i.test(`${message} ${(error as { code?: string }).code ?? ''}`))
      throw new HttpError(503, `the ${who} is not answering; try again in a moment`);
    throw new HttpError(502, `${who}: ${message}`);
  }
}

export class Ctl {
  constructor(
    private readonly nc: NatsConnection,
    private readonly rtmpUrl: string,
  ) {}

  async createKey(streamId: string, label: string | undefined): Promise<KeyReply> {
    const created = await call(
      this.nc,
      subjects.ctl.keysCreate,
      { streamId, label: label ?? 'studio' },
      createKeyReply,
      'ingest',
    );
    return { ...created, rtmpUrl: this.rtmpUrl, revoked: 0 };
  }

  /** Rotate = revoke every key of the channel (live publishers with them are cut), then a new one. */
  async rotateKey(streamId: string, label: string | undefined): Promise<KeyReply> {
    const revoked = await call(this.nc, subjects.ctl.keysRevoke, { streamId }, revokeKeyReply, 'ingest');
    const created = await this.createKey(streamId, label);
    return { ...created, revoked: revoked.revoked };
  }

  move(streamId: string, toWorker: string | undefined) {
    // The reply comes once the make-before-break move is done (up to the handover timeout, 8 s).
    return call(
      this.nc,
      subjects.ctl.streamMove,
      { streamId, ...(toWorker ? { toWorker } : {}) },
      streamMoveReply,
      'supervisor',
      15_000,
    );
  }

  drain(workerId: string) {
    return call(this.nc, subjects.ctl.workerDrain, { workerId }, workerDrainReply, 'supervisor', 10_000);
  }

  async chatToken(room: string, role: ChatRole, name: string | undefined): Promise<ChatTokenReply> {
    const suffix = randomBytes(3).toString('hex');
    const userId = `${role === 'viewer' ? 'guest' : role}-${suffix}`;
    const shown = name ?? userId;
    const reply = await call(
      this.nc,
      subjects.ctl.chatToken,
      { userId, name: shown, role, rooms: [room] },
      chatTokenReply,
      'chat',
    );
    return { ...reply, userId, name: shown };
  }
}
