import type { Identity, IdentityName } from '../../domain/index.js';

/**
 * Slack interactivity: verifying button clicks and mapping Slack users to Cordon identities.
 *
 * A click is attributed to a Cordon identity name, in this order: `userMap[<Slack user id>]`; else,
 * with a `botToken`, the user's email from `users.info` (scope `users:read.email`), looked up as
 * `userMap[<email>]` (case-insensitive), else the email itself when an identity has that name. The
 * name's roles come from `identityOf`, never from Slack.
 */
export interface SlackConfig {
  /** Slack's signing secret: clicks are verified with the v0 signature over the raw body. */
  signingSecret: string;
  /** Slack user id → Cordon identity name (checked before email); emails may be keys too. */
  userMap: Readonly<Record<string, IdentityName>>;
  /** Bot token, to look a clicking user's email up (users.info) when the map has no entry. */
  botToken?: string;
  /** Slack Web API base URL (tests point it at a local recorder). */
  apiUrl?: string;
  /**
   * The Cordon identity (name and current roles) of a name, from the identities the API
   * authenticates; clicks by a name it does not know are refused. Without it every click is refused.
   */
  identityOf?: (name: IdentityName) => Identity | undefined;
}
