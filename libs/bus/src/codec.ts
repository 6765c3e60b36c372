// JSON on the wire, validated by a zod schema on the way out and on the way in.
import type { z } from 'zod';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class InvalidMessageError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidMessageError';
  }
}

/** Validates `value` against `schema` and encodes it; throws InvalidMessageError (a bug in the caller). */
export function encode<S extends z.ZodType>(schema: S, value: z.input<S>): Uint8Array {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidMessageError(describeIssues(result.error));
  return encoder.encode(JSON.stringify(result.data));
}

/** Decodes and validates; returns the reason instead of throwing so consumers can dead-letter it. */
export function decode<S extends z.ZodType>(
  schema: S,
  data: Uint8Array,
): { ok: true; value: z.output<S> } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  const result = schema.safeParse(json);
  if (!result.success) return { ok: false, reason: describeIssues(result.error) };
  return { ok: true, value: result.data };
}

export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}

export const text = (data: Uint8Array): string => decoder.decode(data);
export const bytes = (value: string): Uint8Array => encoder.encode(value);
