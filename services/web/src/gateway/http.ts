// Small HTTP helpers for the gateway: JSON replies, errors with a message a person can act on, and request
// bodies read with a size limit and validated by a zod schema (bad input -> 4xx, never a crash).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeIssues } from '@live/bus';
import type { z } from 'zod';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const NO_STORE = { 'cache-control': 'no-store' };

export function sendJson(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  const data = JSON.stringify(body);
  res
    .writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(data),
      ...NO_STORE,
      ...headers,
    })
    .end(data);
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: message });
}

const BODY_LIMIT = 4096;

/**
 * Reads a JSON body and validates it. Only `application/json` is accepted: a cross-site form cannot send
 * that content type without a CORS preflight, which this gateway never allows (CSRF protection together
 * with the SameSite=Strict cookie).
 */
export async function readJson<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.output<S>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, 'send JSON with content-type: application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw new HttpError(413, `request body over ${BODY_LIMIT} bytes`);
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new HttpError(400, `invalid request: ${describeIssues(result.error)}`);
  return result.data;
}
