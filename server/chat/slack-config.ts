import type { IdentityName } from '../../domain/index.js';

/** Slack interactivity: verifying button clicks and mapping Slack users to Cordon identities. */
export interface SlackConfig {
  /** Slack's signing secret: clicks are verified with the v0 signature over the raw body. */
  signingSecret: string;
  /** Slack user id → Cordon identity name (checked before email). */
  userMap: Readonly<Record<string, IdentityName>>;
  /** Bot token, to look a clicking user's email up (users.info) when the map has no entry. */
  botToken?: string;
  /** Slack Web API base URL (tests point it at a local recorder). */
  apiUrl?: string;
}
