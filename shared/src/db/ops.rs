//! The ops kit's tables (probe_runs, probe_gates, probe_effects, scheduler_runs): every
//! statement on them.
