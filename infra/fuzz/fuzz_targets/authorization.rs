//! The `Authorization` header and token verification: whatever arrives,
//! an answer (a caller or a 401), never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use medkit::auth;
use medkit::env::Env;
use medkit::ids::ClientId;
use medkit::registry::Registry;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut r = Registry::default();
    r.add(ClientId::parse("fuzz").unwrap(), b"fuzzing secret");
    r
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = auth::parse_authorization(Some(text));
    // As a header value, and as the token of a known extension.
    for env in [Env::Sandbox, Env::Production] {
        let _ = auth::verify(&REGISTRY, env, Some(text));
        let with_client = format!("fuzz {text}");
        if let Ok(caller) = auth::verify(&REGISTRY, env, Some(&with_client)) {
            // Only a token this secret signed can verify.
            panic!("an unsigned input verified: {caller:?}");
        }
    }
    let ext = REGISTRY.get("fuzz").unwrap();
    assert!(auth::verify_refresh(ext, text).is_err());
});
