import { trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import type { Config } from './config.js';

/** A process's tracing: spans of `service` go to its span processor. */
export interface Tracing {
  tracer: Tracer;
  resource: Resource;
  spanProcessor: SpanProcessor;
  /** Flushes the spans still buffered, then stops. */
  shutdown(): Promise<void>;
}

/**
 * The span processor the configuration asks for: OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (its
 * `/v1/traces`, or the exporter's default collector address), the console, or none when tracing is off.
 */
export function spanProcessorFor(config: Pick<Config, 'tracing'>): SpanProcessor | undefined {
  switch (config.tracing.exporter) {
    case 'none':
      return undefined;
    case 'console':
      return new SimpleSpanProcessor(new ConsoleSpanExporter());
    case 'otlp': {
      const endpoint = config.tracing.otlpEndpoint;
      return new BatchSpanProcessor(new OTLPTraceExporter(endpoint ? { url: `${endpoint.replace(/\/+$/, '')}/v1/traces` } : {}));
    }
  }
}

/**
 * Registers the process-wide tracer provider (W3C trace context, async-local context) exporting to
 * `spanProcessor`. Once per process: the OpenTelemetry API keeps the first provider registered.
 */
export function startTracing(service: string, spanProcessor: SpanProcessor): Tracing {
  const resource = new Resource({ 'service.name': service });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  return {
    tracer: trace.getTracer('cordon'),
    resource,
    spanProcessor,
    shutdown: () => provider.shutdown(),
  };
}

/**
 * The Temporal client interceptors of a traced process: a workflow starts (and is signalled, queried
 * or updated) inside the caller's span, which travels to the workflow in its headers.
 */
export function clientTracingInterceptors(): { workflow: OpenTelemetryWorkflowClientInterceptor[] } {
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}
