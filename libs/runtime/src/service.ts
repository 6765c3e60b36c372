// Registration with the NATS services framework, so `nats micro ls/info/stats` (and $SRV.PING/INFO/STATS)
// show every service, and operator endpoints with requests and replies validated by zod schemas.
import { bytes, decode, encode } from '@live/bus';
import type { NatsConnection } from '@nats-io/nats-core';
import { type Service, type ServiceMsg, Svcm } from '@nats-io/services';
import type { Logger } from 'pino';
import type { z } from 'zod';

/** Thrown by an endpoint handler to refuse a request with a message for the operator. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly code = 400,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

export interface EndpointDefinition<Req extends z.ZodType, Rep extends z.ZodType> {
  /** Short name shown by `nats micro info` (e.g. keys-create). */
  name: string;
  subject: string;
  request: Req;
  reply: Rep;
  description: string;
  handler: (request: z.output<Req>) => Promise<z.input<Rep>>;
}

// biome-ignore lint/suspicious/noExplicitAny: a list of endpoints with different schemas
export type AnyEndpoint = EndpointDefinition<any, any>;

export function endpoint<Req extends z.ZodType, Rep extends z.ZodType>(
  definition: EndpointDefinition<Req, Rep>,
): EndpointDefinition<Req, Rep> {
  return definition;
}

export interface ServiceOptions {
  name: string;
  version: string;
  description: string;
  /** Instance facts for `nats micro info` (host, pid, ...). */
  metadata?: Record<string, string>;
  endpoints: AnyEndpoint[];
}

export async function registerService(
  nc: NatsConnection,
  logger: Logger,
  options: ServiceOptions,
): Promise<Service> {
  const service = await new Svcm(nc).add({
    name: options.name,
    version: options.version,
    description: options.description,
    metadata: options.metadata ?? {},
  });
  for (const def of options.endpoints) {
    service.addEndpoint(def.name, {
      subject: def.subject,
      metadata: { description: def.description },
      handler: (error, msg) => {
        if (error) {
          logger.error({ err: error.message, endpoint: def.name }, 'endpoint error');
          return;
        }
        void answer(def, msg, logger);
      },
    });
  }
  logger.info(
    { service: options.name, endpoints: options.endpoints.map((e) => e.subject) },
    'registered NATS service',
  );
  return service;
}

async function answer(def: AnyEndpoint, msg: ServiceMsg, logger: Logger): Promise<void> {
  const decoded = decode(def.request, msg.data);
  if (!decoded.ok) {
    logger.warn({ endpoint: def.name, reason: decoded.reason }, 'invalid operator request refused');
    msg.respondError(
      400,
      `invalid request for ${def.subject}: ${decoded.reason}`,
      bytes(JSON.stringify({ error: decoded.reason })),
    );
    return;
  }
  try {
    const reply = await def.handler(decoded.value);
    msg.respond(encode(def.reply, reply));
  } catch (error) {
    const code = error instanceof RequestError ? error.code : 500;
    const message = (error as Error).message;
    if (code >= 500) logger.error({ endpoint: def.name, err: message }, 'operator request failed');
    msg.respondError(code, message, bytes(JSON.stringify({ error: message })));
  }
}
