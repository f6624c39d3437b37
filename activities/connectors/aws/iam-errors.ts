import { CordonError, type ErrorType } from '../../../domain/index.js';

/**
 * Error codes that say "try again later" whatever their HTTP status: IAM answers throttling with
 * HTTP 400 `Throttling`, so the status alone would call it a rejection.
 */
const TRANSIENT_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
  'RequestThrottled',
  'ServiceUnavailable',
  'ServiceFailure',
  'InternalFailure',
  'RequestTimeout',
  'RequestTimeoutException',
  'PriorRequestNotComplete',
]);

/** IAM's codes for "someone else is changing this entity right now". */
const CONCURRENT_CODES = new Set(['ConcurrentModification', 'EntityTemporarilyUnmodifiable']);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  Code?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

function shape(error: unknown): SdkErrorShape {
  return (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
}

// Query-protocol errors carry the wire code as `Code` (NoSuchEntity); the SDK names modelled ones
// after their shape (NoSuchEntityException); Node's network errors carry `code` (ECONNREFUSED).
function wireCode(e: SdkErrorShape): string {
  return [e.Code, e.name, e.code].find((v): v is string => typeof v === 'string' && v !== '' && v !== 'Error') ?? 'Unknown';
}

/** The AWS error code of what `IAMClient.send` threw (`NoSuchEntity`, `Throttling`), or `Unknown`. */
export function awsErrorCode(error: unknown): string {
  return wireCode(shape(error)).replace(/Exception$/, '');
}

/**
 * Converts what `IAMClient.send` threw into a catalogue error: NoSuchEntity → TargetNotFound;
 * ConcurrentModification and EntityTemporarilyUnmodifiable → ConcurrentModification; throttling,
 * 429, 5xx and failures without an HTTP answer (refused or reset connections, timeouts, credentials
 * that could not be fetched) → ConnectorUnavailable (retryable); every other 4xx (AccessDenied,
 * InvalidInput, LimitExceeded, MalformedPolicyDocument, ValidationError, …) → ConnectorRejected.
 * A CordonError passes through unchanged.
 */
export function iamFailure(error: unknown, operation: string): CordonError {
  if (error instanceof CordonError) return error;
  const e = shape(error);
  const rawCode = wireCode(e);
  const code = rawCode.replace(/Exception$/, '');
  const status = e.$metadata?.httpStatusCode;
  const message = typeof e.message === 'string' ? e.message : String(error);
  const details = { operation, awsCode: rawCode, ...(status !== undefined ? { httpStatus: status } : {}), ...(e.$metadata?.requestId ? { requestId: e.$metadata.requestId } : {}) };

  let type: ErrorType;
  if (code === 'NoSuchEntity') type = 'TargetNotFound';
  else if (CONCURRENT_CODES.has(code)) type = 'ConcurrentModification';
  else if (TRANSIENT_CODES.has(rawCode) || TRANSIENT_CODES.has(code)) type = 'ConnectorUnavailable';
  else if (status === undefined || status === 429 || status >= 500) type = 'ConnectorUnavailable';
  else if (status >= 400) type = 'ConnectorRejected';
  // A 2xx or 3xx the SDK could not use (an unparsable body, a redirect to elsewhere): a proxy or an
  // outage in between is likelier than a refusal, and the activity's retries are bounded.
  else type = 'ConnectorUnavailable';
  return new CordonError(type, `IAM ${operation}: ${message}`, details);
}
