import { describe, expect, it } from '@jest/globals';
import { ProviderLifecycle, type ProviderWrapper } from '../../lib/lifecycle/provider-lifecycle.js';

/** Nest's `InstanceWrapper` as the lifecycle reads it: a static singleton unless told otherwise. */
function wrapper(
  instance: object,
  {
    ctor = [],
    properties = [],
    transient = false,
    isStatic = true,
  }: {
    ctor?: ProviderWrapper[];
    properties?: ProviderWrapper[];
    transient?: boolean;
    isStatic?: boolean;
  } = {},
): ProviderWrapper {
  return {
    instance,
    isTransient: transient,
    isDependencyTreeStatic: () => isStatic,
    getCtorMetadata: () => ctor,
    getPropertiesMetadata: () => properties.map((w) => ({ wrapper: w })),
  };
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

class Hooked {
  readonly calls: string[] = [];
  async onApplicationBootstrap(): Promise<string> {
    this.calls.push('bootstrap');
    return 'bootstrapped';
  }
  async onModuleDestroy(): Promise<void> {
    this.calls.push('destroy');
  }
}

/** Runs every microtask queued so far, and those they queue: what is still pending after it waits on something else. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Whether `promise` has settled, without waiting for it. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await flush();
  return done;
}

describe('ProviderLifecycle.bootstrapped', () => {
  it('resolves once the owner and every provider it injects (constructor and property, transitively) finished onApplicationBootstrap', async () => {
    const owner = new Hooked();
    const injected = new Hooked();
    const deeper = new Hooked();
    const lifecycle = new ProviderLifecycle();
    const ready = lifecycle.bootstrapped([
      wrapper(owner, { ctor: [wrapper(injected, { properties: [wrapper(deeper)] })] }),
    ]);
    await owner.onApplicationBootstrap();
    await injected.onApplicationBootstrap();
    expect(await settled(ready)).toBe(false);
    await deeper.onApplicationBootstrap();
    expect(await settled(ready)).toBe(true);
    expect([owner, injected, deeper].map((p) => p.calls)).toEqual([
      ['bootstrap'],
      ['bootstrap'],
      ['bootstrap'],
    ]);
  });

  it('does not wait for providers without the hook, transient ones or request-scoped ones', async () => {
    const lifecycle = new ProviderLifecycle();
    const ready = lifecycle.bootstrapped([
      wrapper(
        { plain: true },
        {
          ctor: [
            wrapper(new Hooked(), { transient: true }),
            wrapper(new Hooked(), { isStatic: false }),
          ],
        },
      ),
    ]);
    expect(await settled(ready)).toBe(true);
  });

  it('stays shut when the hook throws (app.init() fails; no handler may run)', async () => {
    const owner = new Hooked();
    owner.onApplicationBootstrap = async () => {
      throw new Error('bootstrap failed');
    };
    const lifecycle = new ProviderLifecycle();
    const ready = lifecycle.bootstrapped([wrapper(owner)]);
    await expect(owner.onApplicationBootstrap()).rejects.toThrow('bootstrap failed');
    expect(await settled(ready)).toBe(false);
  });

  it("runs the app's hook with its own this and result, then puts it back as it was", async () => {
    const prototypeHook = new Hooked();
    const ownHook = Object.assign(new Hooked(), { onApplicationBootstrap: async () => 'own' });
    const original = ownHook.onApplicationBootstrap;
    const lifecycle = new ProviderLifecycle();
    void lifecycle.bootstrapped([wrapper(prototypeHook), wrapper(ownHook)]);
    expect(await prototypeHook.onApplicationBootstrap()).toBe('bootstrapped');
    expect(prototypeHook.calls).toEqual(['bootstrap']);
    expect(Object.prototype.hasOwnProperty.call(prototypeHook, 'onApplicationBootstrap')).toBe(
      false,
    );
    expect(await ownHook.onApplicationBootstrap()).toBe('own');
    expect(ownHook.onApplicationBootstrap).toBe(original);
  });

  it('patches a provider once, however many streams wait for it (and survives a dependency cycle)', async () => {
    const shared = new Hooked();
    const a: ProviderWrapper = { ...wrapper(shared), getCtorMetadata: () => [a] };
    const lifecycle = new ProviderLifecycle();
    const first = lifecycle.bootstrapped([a]);
    const second = lifecycle.bootstrapped([wrapper({}, { ctor: [a] })]);
    await shared.onApplicationBootstrap();
    expect(await settled(Promise.all([first, second]))).toBe(true);
    expect(shared.calls).toEqual(['bootstrap']);
  });
});

describe('ProviderLifecycle.drainBeforeTeardown', () => {
  it("runs every stream's drain before the teardown hook of a provider the handlers use, and the hook only after they finished", async () => {
    const injected = new Hooked();
    const drains = [deferred(), deferred()];
    const drained: number[] = [];
    const lifecycle = new ProviderLifecycle();
    const owner = wrapper({}, { ctor: [wrapper(injected)] });
    drains.forEach((d, i) =>
      lifecycle.drainBeforeTeardown([owner], () => (drained.push(i), d.promise)),
    );
    const destroying = injected.onModuleDestroy();
    await flush();
    expect(drained).toEqual([0, 1]);
    expect(injected.calls).toEqual([]);
    drains[0].resolve();
    expect(await settled(destroying)).toBe(false);
    drains[1].resolve();
    await destroying;
    expect(injected.calls).toEqual(['destroy']);
  });

  it("never fails the app's hook when a drain fails", async () => {
    const owner = new Hooked();
    const lifecycle = new ProviderLifecycle();
    lifecycle.drainBeforeTeardown([wrapper(owner)], () =>
      Promise.reject(new Error('drain failed')),
    );
    await expect(owner.onModuleDestroy()).resolves.toBeUndefined();
    expect(owner.calls).toEqual(['destroy']);
  });

  it('leaves providers without teardown hooks, and transient ones, as they are', async () => {
    const plain = { name: 'plain' };
    const transient = new Hooked();
    const before = transient.onModuleDestroy;
    const lifecycle = new ProviderLifecycle();
    lifecycle.drainBeforeTeardown(
      [wrapper(plain, { ctor: [wrapper(transient, { transient: true })] })],
      async () => undefined,
    );
    expect(plain).toEqual({ name: 'plain' });
    expect(transient.onModuleDestroy).toBe(before);
  });
});
