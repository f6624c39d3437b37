import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a signature's timestamp may be from now, either way (Slack and Stripe use 5 minutes). */
export const SIGNATURE_WINDOW_SECONDS = 300;

/** Signs a body as alert senders do: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`. */
export function signAlert(secret: Buffer | string, body: Buffer | string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.`).update(body).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/** Why a signature was refused, or ok. */
export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks an `X-Cordon-Signature` header over the raw body. Several `v1=` values may be sent (during
 * a secret rotation); one match is enough. Comparison is constant-time.
 */
export function verifyAlertSignature(header: string, secret: Buffer, body: Buffer, nowSeconds: number): SignatureCheck {
  let timestamp: number | undefined;
  const macs: Buffer[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2) as [string, string | undefined];
    if (key === 't' && value !== undefined && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    if (key === 'v1' && value !== undefined && /^[0-9a-f]{64}$/.test(value)) macs.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === undefined) return { ok: false, reason: 'signature has no valid t= timestamp' };
  if (macs.length === 0) return { ok: false, reason: 'signature has no valid v1= value' };
  if (Math.abs(nowSeconds - timestamp) > SIGNATURE_WINDOW_SECONDS) {
    return { ok: false, reason: `signature timestamp is outside the ${SIGNATURE_WINDOW_SECONDS} s window` };
  }
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  return macs.some((mac) => timingSafeEqual(mac, expected)) ? { ok: true } : { ok: false, reason: 'signature does not match' };
}
