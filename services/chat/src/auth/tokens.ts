// Chat tokens: HS256 JWTs (jose) carrying the user, display name, rooms and capabilities. Every pod verifies
// with the shared CHAT_TOKEN_SECRET; the operator endpoint, the CLI and the local guest endpoint mint them.
import { randomBytes } from 'node:crypto';
import {
  type ChatCapability,
  type ChatRole,
  type ChatTokenClaims,
  chatTokenClaims,
  ROLE_CAPABILITIES,
} from '@live/contracts';
import { errors, jwtVerify, SignJWT } from 'jose';

export interface MintRequest {
  userId: string;
  name: string;
  role: ChatRole;
  rooms: string[];
  caps?: ChatCapability[];
  ttlSeconds?: number;
}

/** Why a token was refused, in words a client developer understands. */
export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

const ISSUER = 'live-chat';

export class Tokens {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly defaultTtlSeconds: number,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async mint(request: MintRequest): Promise<{ token: string; expiresAt: number }> {
    const expiresAt = Math.floor(Date.now() / 1000) + (request.ttlSeconds ?? this.defaultTtlSeconds);
    const claims = chatTokenClaims.parse({
      sub: request.userId,
      name: request.name,
      role: request.role,
      rooms: request.rooms,
      caps: request.caps ?? ROLE_CAPABILITIES[request.role],
    });
    const token = await new SignJWT({
      name: claims.name,
      role: claims.role,
      rooms: claims.rooms,
      caps: claims.caps,
    })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(claims.sub)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.key);
    return { token, expiresAt: expiresAt * 1000 };
  }

  /** A read-and-write viewer token for one room, for the local demo's watch page. */
  mintGuest(room: string): Promise<{ token: string; expiresAt: number; userId: string; name: string }> {
    const suffix = randomBytes(3).toString('hex');
    const userId = `guest-${suffix}`;
    const name = `guest-${suffix}`;
    return this.mint({ userId, name, role: 'viewer', rooms: [room] }).then((t) => ({ ...t, userId, name }));
  }

  /** Verifies signature, algorithm, issuer and expiry, then the claims' shape. Throws TokenError. */
  async verify(token: string): Promise<ChatTokenClaims> {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new TokenError('token expired');
      if (error instanceof errors.JOSEError) throw new TokenError(`token refused: ${error.message}`);
      throw new TokenError('token refused: not a JWT');
    }
    const claims = chatTokenClaims.safeParse(payload);
    if (!claims.success)
      throw new TokenError(`token refused: bad claims (${claims.error.issues[0]?.message})`);
    return claims.data;
  }
}

export function tokenAllowsRoom(claims: ChatTokenClaims, room: string): boolean {
  return claims.rooms.includes('*') || claims.rooms.includes(room);
}
