//! castellan's per-host agent: config, observe, per-guest serial queue, executor, reconcile loop.
