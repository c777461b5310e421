//! The web server's request head parser, token check and Accept negotiation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rpm2_core::web::parse_head(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = rpm2_core::web::authorized(Some(s), "token");
        let _ = rpm2_core::web::wants_html(Some(s));
        let _ = rpm2_core::web::host_is_address(Some(s));
    }
});
