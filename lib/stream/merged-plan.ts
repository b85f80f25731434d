import { ChangeStreamConfigError } from '../change-stream.errors.js';
import { messages } from '../change-stream.messages.js';
import type { StreamPlan } from './stream-plan.js';

/** One stream for several collection plans (a database's, or a deployment's): what they share, merged. */
export function mergedPlan(
  parts: StreamPlan[],
  stream: {
    collection: string;
    scope: StreamPlan['scope'];
    match: object;
    conflict: Parameters<typeof agreeAcross>[2];
  },
): StreamPlan {
  const splitLargeEvents = parts.some((p) => p.splitLargeEvents);
  return {
    connectionName: parts[0].connectionName,
    collection: stream.collection,
    scope: stream.scope,
    pipeline: [
      { $match: stream.match },
      ...(splitLargeEvents ? [{ $changeStreamSplitLargeEvent: {} }] : []),
    ],
    hasUserPipeline: parts.some((p) => p.hasUserPipeline),
    concurrencyCap: parts.reduce<number | undefined>(
      (cap, p) =>
        p.concurrencyCap === undefined ? cap : Math.min(cap ?? Infinity, p.concurrencyCap),
      undefined,
    ),
    fullDocument: agreeAcross(parts, 'fullDocument', stream.conflict),
    fullDocumentBeforeChange: agreeAcross(parts, 'fullDocumentBeforeChange', stream.conflict),
    splitLargeEvents,
    handlers: parts.flatMap((p) => p.handlers),
  };
}

/** A collection plan's `$match` conditions (its pipeline is `$match` stages, then maybe the split stage). */
export function matchesOf(plan: StreamPlan): object[] {
  return plan.pipeline
    .filter((stage): stage is { $match: object } => '$match' in stage)
    .map((stage) => stage.$match);
}

/** One database (or deployment) stream has one `fullDocument` (and pre-image) setting: its collections' handlers must agree. */
export function agreeAcross<K extends 'fullDocument' | 'fullDocumentBeforeChange'>(
  parts: readonly StreamPlan[],
  option: K,
  conflict: typeof messages.databaseStreamOptionConflict,
): StreamPlan[K] {
  let chosen: { plan: StreamPlan; value: StreamPlan[K] } | undefined;
  for (const plan of parts) {
    const value = plan[option];
    if (value === undefined) continue;
    if (!chosen) chosen = { plan, value };
    else if (value !== chosen.value) {
      throw new ChangeStreamConfigError(
        conflict(
          plan.connectionName,
          setterOf(chosen.plan, option, chosen.value),
          setterOf(plan, option, value),
          option,
          chosen.value,
          value,
        ),
      );
    }
  }
  // 'required' makes the server fail the whole stream on an event without its image: a collection
  // that did not ask for it (pre-images off, say) must not get it by sharing the stream.
  const unset = chosen?.value === 'required' && parts.find((p) => p[option] === undefined);
  if (chosen && unset)
    throw new ChangeStreamConfigError(
      messages.databaseStreamOptionConflict(
        chosen.plan.connectionName,
        setterOf(chosen.plan, option, chosen.value),
        `${unset.handlers.map((h) => h.name).join(', ')} ('${unset.collection}')`,
        option,
        chosen.value,
        undefined,
      ),
    );
  return chosen?.value;
}

function setterOf(plan: StreamPlan, option: string, value: unknown): string {
  const handler = plan.handlers.find(
    (h) => (h.options as Record<string, unknown>)[option] === value,
  );
  return `${handler?.name} ('${plan.collection}')`;
}
