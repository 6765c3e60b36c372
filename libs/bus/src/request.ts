// Calling an operator endpoint: one request, the service's refusal (Nats-Service-Error) as an Error with its
// message, and the reply validated by the endpoint's schema. Used by the CLIs.
import type { NatsConnection } from '@nats-io/nats-core';
import type { z } from 'zod';
import { bytes, decode, text } from './codec.js';

export class ServiceRefusedError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'ServiceRefusedError';
  }
}

export async function requestEndpoint<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  reply: S,
  timeoutMs = 5000,
): Promise<z.output<S>> {
  const msg = await nc.request(subject, bytes(JSON.stringify(body)), { timeout: timeoutMs });
  const error = msg.headers?.get('Nats-Service-Error');
  if (error) throw new ServiceRefusedError(error, Number(msg.headers?.get('Nats-Service-Error-Code') || 500));
  const decoded = decode(reply, msg.data);
  if (!decoded.ok) throw new Error(`unexpected reply: ${decoded.reason}: ${text(msg.data)}`);
  return decoded.value;
}
