import { IAMClient, type IAMClientConfig } from '@aws-sdk/client-iam';

export interface IamClientOptions {
  /** IAM is global; the region only picks the signing region and endpoint (us-east-1 for the aws partition). */
  region: string;
  /** An IAM-compatible endpoint (moto, LocalStack) instead of AWS's own. */
  endpoint?: string | undefined;
  /** Static credentials or a provider; absent: the SDK's default chain (environment, profile, web identity, container, instance metadata). */
  credentials?: IAMClientConfig['credentials'];
  /** Socket connect timeout. */
  connectionTimeoutMs?: number;
  /** Per-request timeout once connected. */
  requestTimeoutMs?: number;
}

/**
 * An IAM client for the connector. It makes one attempt per call (`maxAttempts: 1`): retries belong
 * to the Temporal activity, whose retry policy is bounded, lists the non-retryable types and shows
 * every attempt in the run's history; SDK retries inside an attempt would hide them and multiply the
 * time an attempt can take.
 */
export function createIamClient(options: IamClientOptions): IAMClient {
  return new IAMClient({
    region: options.region,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: options.connectionTimeoutMs ?? 3_000, requestTimeout: options.requestTimeoutMs ?? 10_000 },
    ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
    ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
  });
}
