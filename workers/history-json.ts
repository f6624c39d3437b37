// Temporal workflow histories to and from Temporal's JSON form (ProtoJSON), the form history files,
// `temporal workflow show -o json` and `historyFromJSON` use.
//
// @temporalio/common's own historyToJSON and historyFromJSON take ProtoJSON from their copy of
// protobufjs and check the message type with `instanceof` against it. Where npm installs protobufjs
// more than once (it does here: @grpc/proto-loader keeps protobufjs 7 at the top, so @temporalio/common
// and @temporalio/proto get a copy of protobufjs 8 each), that check fails with "type must be a Type".
// So these take ProtoJSON from the copy that @temporalio/proto's types are built with.
import { createRequire } from 'node:module';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { temporal } from '@temporalio/proto';

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}

const protoEntry = createRequire(import.meta.url).resolve('@temporalio/proto');
const requireNextToProto = createRequire(protoEntry);
const protojson = requireNextToProto('protobufjs/ext/protojson') as ProtoJson;
const HistoryType = (requireNextToProto(protoEntry) as { temporal: typeof temporal }).temporal.api.history.v1.History;

/** A history in Temporal's JSON form: `{ events: [...] }` with enum names, int64 as strings, RFC 3339 times. */
export interface HistoryJson {
  events: Record<string, unknown>[];
}

/** Converts a history (as `fetchHistory()` returns it) to Temporal's JSON form. */
export function historyToJson(history: History): HistoryJson {
  return protojson.toJson(HistoryType, HistoryType.fromObject(history)) as HistoryJson;
}

/**
 * Reads a history in Temporal's JSON form, for `Worker.runReplayHistory`. Fields it does not know
 * (from a newer server) are ignored. Throws a TypeError when `json` is not a history with events.
 */
export function historyFromJson(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events) || (json as HistoryJson).events.length === 0) {
    throw new TypeError('not a Temporal history: expected an object with a non-empty array of events');
  }
  return protojson.fromJson(HistoryType, json, { ignoreUnknownFields: true }) as History;
}
