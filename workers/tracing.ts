import { createRequire } from 'node:module';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { OpenTelemetrySinks } from '@temporalio/interceptors-opentelemetry';
import type { Tracing } from '../config/tracing.js';

const require = createRequire(import.meta.url);

/**
 * The workflow interceptors of a traced worker, bundled with the workflow code: a span for the run and
 * one per activity it schedules, carried to the activity in its headers. They add no commands (the
 * SDK's flags keep histories written without them replaying), and their spans leave the workflow
 * sandbox through the `exporter` sink.
 */
export const WORKFLOW_TRACING_MODULES: readonly string[] = [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')];

/** What a worker adds to trace workflows and activities: interceptors and the span exporter sink. */
export interface WorkerTracing {
  interceptors: Required<Pick<WorkerInterceptors, 'activity' | 'workflowModules'>>;
  sinks: InjectedSinks<OpenTelemetrySinks>;
}

/** The worker's tracing over the process's tracer provider. */
export function workerTracing(tracing: Pick<Tracing, 'resource' | 'spanProcessor'>): WorkerTracing {
  return {
    interceptors: {
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
      workflowModules: [...WORKFLOW_TRACING_MODULES],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
