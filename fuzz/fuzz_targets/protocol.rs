//! The control-socket protocol: a request line into `protocol::Request`, then into a typed `Method`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rpm2_core::protocol::request::Method;
use rpm2_core::protocol::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<Request>(data) else { return };
    if let Ok(m) = Method::parse(&req.method, req.params) {
        let _ = m.name();
        let _ = m.is_read_only();
    }
});
