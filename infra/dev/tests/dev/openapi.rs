//! The OpenAPI description `medkit serve` serves at /openapi.json against the
//! routers it merges: every route the functions serve is described with
//! exactly the methods it answers, nothing described is missing, and each
//! operation's `security` says truly whether it needs a token. (schemathesis,
//! run by the test command, checks the answers against the schemas.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::common::{Server, send};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every path a function's router registers: the literal after `.route(`.
fn served_paths() -> BTreeSet<String> {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../functions");
    let mut paths = BTreeSet::new();
    for f in std::fs::read_dir(&functions).unwrap() {
        let lib = f.unwrap().path().join("src/lib.rs");
        let Ok(src) = std::fs::read_to_string(&lib) else {
            continue;
        };
        for (at, _) in src.match_indices(".route(") {
            let rest = src[at + ".route(".len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                let path = &lit[..lit.find('"').unwrap()];
                if path.starts_with("/v1/e/") {
                    paths.insert(path.to_string());
                }
            }
        }
    }
    assert!(paths.len() > 30, "found too few routes: {paths:?}");
    paths
}

fn described(spec: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| {
            let ops = ops.as_object().unwrap();
            (
                p.clone(),
                ops.iter().map(|(m, o)| (m.clone(), o.clone())).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_openapi_description_matches_the_routers() {
    let server = Server::start(&["--memory"]);
    let (status, spec) = send(
        Method::GET,
        &format!("{}/openapi.json", server.base),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let described = described(&spec);

    let served = served_paths();
    let listed: BTreeSet<String> = described.keys().cloned().collect();
    let undescribed: Vec<_> = served.difference(&listed).collect();
    let unserved: Vec<_> = listed.difference(&served).collect();
    assert!(
        undescribed.is_empty(),
        "served but not in openapi.json: {undescribed:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.json but not served: {unserved:?}"
    );

    // Methods: a described one reaches a handler (no token: 401, or a refusal
    // of the empty body where none is needed); any other is 405.
    let mut operations = 0;
    for (path, ops) in &described {
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let url = format!("{}{path}", server.base);
            let (status, body) = send(method, &url, None, None).await;
            assert!(body["reason"].is_string(), "{m} {path}: {body}");
            match ops.get(m) {
                None => assert_eq!(status, 405, "{m} {path} is served but not described"),
                Some(op) => {
                    operations += 1;
                    assert_ne!(status, 405, "{m} {path} is described but not served");
                    assert_ne!(status, 404, "{m} {path} is described but not served");
                    let needs_token = op["security"].as_array().is_some_and(|s| !s.is_empty());
                    assert_eq!(
                        status == 401,
                        needs_token,
                        "{m} {path}: security says token {needs_token}, the server answered {status}"
                    );
                }
            }
        }
    }
    assert!(operations >= 70, "{operations} operations");
}
