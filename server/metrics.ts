import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, FastifyTypeProvider, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry, registerKillSwitchGauge } from '../config/metrics.js';
import type { GuardrailState } from '../store/guardrail-state.js';

const spans = new WeakMap<FastifyRequest, Span>();

/** The route template a request matched (`/v1/runs/:runId`), never its concrete path. */
const routeOf = (request: FastifyRequest): string => request.routeOptions.url ?? 'unmatched';

/**
 * Instruments the API: a server span per request (continuing a caller's W3C `traceparent`), so that
 * what a handler does, such as starting a workflow, is traced as its child; request counts and
 * durations by route template; and `GET /metrics` in Prometheus' text format (no authentication: it
 * holds no identities). Spans go to the process's tracer provider, a no-op unless tracing is on.
 */
export function instrumentServer<L extends FastifyBaseLogger, P extends FastifyTypeProvider>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L, P>,
  deps: { guardrailState: Pick<GuardrailState, 'killSwitches'> },
): Registry {
  const registry = createMetricsRegistry();
  registerKillSwitchGauge(registry, deps.guardrailState);
  const requests = new Counter({
    name: 'cordon_http_requests_total',
    help: 'HTTP requests answered by the API, by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'cordon_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route template',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const tracer = trace.getTracer('cordon-api');

  app.addHook('onRequest', (request, _reply, done) => {
    const parent = propagation.extract(context.active(), request.headers);
    const span = tracer.startSpan(`${request.method} ${routeOf(request)}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'http.route': routeOf(request) } }, parent);
    spans.set(request, span);
    // The rest of the request's lifecycle runs inside this call, so it inherits the span as its context.
    context.with(trace.setSpan(parent, span), done);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request);
    requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    durations.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    const span = spans.get(request);
    if (span) {
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      spans.delete(request);
    }
    done();
  });

  app.get('/metrics', { schema: { summary: 'Prometheus metrics of this API instance', hide: true } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
  return registry;
}
