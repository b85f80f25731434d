import { metrics } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

/**
 * The OpenTelemetry metrics SDK with a Prometheus exporter that serves no port of its own: the
 * app's `/metrics` route hands scrapes to it. Registered before the app starts, so the module
 * finds it when it initialises.
 */
export const prometheus = new PrometheusExporter({ preventServerStart: true });

export function registerMetrics(): void {
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [prometheus] }));
}
