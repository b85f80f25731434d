import type { Logger } from '@nestjs/common';
import type { DeadLetterStore } from '../interfaces/dead-letter.interface.js';
import { streamModeOf, warnUnknownStreamConnections } from '../options/streams-option.js';
import { deploymentKey, positionKey } from '../redis/redis-keys.js';
import type { ChangeHandler } from '../stream/change-handler.js';
import { createDispatcher } from '../stream/create-collection-stream.js';
import { databasePlans } from '../stream/database-plan.js';
import { planStreams, type StreamPlan } from '../stream/stream-plan.js';
import { DEPLOYMENT_STREAM } from '../stream/stream-scope.js';
import type { HandlerRuns } from './handler-runs.js';
import type { ResolvedTestingOptions } from './testing-options.js';
import type { TestingStream } from './testing-streams.js';

export interface TestingPlanSetup {
  handlers: ChangeHandler[];
  options: ResolvedTestingOptions;
  runs: HandlerRuns;
  /** The dead-letter store the dispatchers write to (recording which handler's letter was stored). */
  deadLetters: DeadLetterStore;
  logger: Pick<Logger, 'warn'>;
}

/**
 * The testing module's streams, planned as production plans them (`planStreams`, then
 * `databasePlans` per the `streams` option: same checks, same messages), keyed as production keys
 * them, each with production's dispatcher over handlers that record their calls.
 */
export function plannedStreams(setup: TestingPlanSetup): TestingStream[] {
  const { handlers, options, runs, deadLetters } = setup;
  const { module, databaseOf } = options;
  const plans = databasePlans(
    planStreams(handlers, module.checkpoint.maxEvents),
    streamModeOf(module.streams),
  );
  warnUnknownStreamConnections(module.streams, handlers, setup.logger);
  return plans.map((plan) => {
    const deployment = plan.scope.kind === 'deployment';
    const database = deployment ? DEPLOYMENT_STREAM : databaseOf(plan.connectionName);
    const key = deployment
      ? deploymentKey(module.keyPrefix, module.consumer, plan.connectionName)
      : positionKey(module.keyPrefix, module.consumer, database, plan.collection);
    const dispatcher = createDispatcher({
      plan: recordedPlan(plan, runs),
      database,
      key,
      options: module,
      deadLetters,
      onFailure: runs.recordedPolicy(module.onHandlerFailure),
    });
    return {
      plan,
      database,
      key,
      concurrency: Math.min(module.concurrency, plan.concurrencyCap ?? Infinity),
      dispatcher,
      abort: new AbortController(),
      tail: Promise.resolve(),
      failure: null,
    };
  });
}

/** `plan` with each handler wrapped to record its calls, also in the parts that database and deployment routes are built from. */
function recordedPlan(plan: StreamPlan, runs: HandlerRuns): StreamPlan {
  const recorded = new Map(plan.handlers.map((h) => [h, runs.recorded(h)]));
  const wrap = (part: StreamPlan): StreamPlan => ({
    ...part,
    handlers: part.handlers.map((h) => recorded.get(h) ?? runs.recorded(h)),
  });
  const { scope } = plan;
  if (scope.kind === 'deployment')
    return { ...wrap(plan), scope: { ...scope, parts: scope.parts.map(wrap) } };
  if (scope.kind === 'database') {
    const parts = new Map([...scope.parts].map(([name, part]) => [name, wrap(part)]));
    return { ...wrap(plan), scope: { ...scope, parts } };
  }
  return wrap(plan);
}
