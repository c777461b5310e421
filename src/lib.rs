//! napi bindings (placeholder until the JS API lands).
