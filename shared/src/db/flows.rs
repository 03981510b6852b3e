//! Flows and their published versions (flows, flow_versions): every statement on them.
